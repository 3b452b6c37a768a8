import os

from vgs.runtime import rule_logging
from vgs.speech.wordcorpus import wordcorpus_features

with rule_logging(snakemake):
    wordcorpus_features(os.path.join(snakemake.input.corpus, "wav.scp"), snakemake.output.h5,
                        snakemake.output.report, snakemake.params.fbank, threads=snakemake.threads)
