import os

from vgs.runtime import rule_logging
from vgs.speech.wordcorpus import wordcorpus_windows

with rule_logging(snakemake):
    wordcorpus_windows(snakemake.input.fbank, snakemake.params.segments, snakemake.params.times,
                       os.path.join(snakemake.input.corpus, "utt2spk"), snakemake.output.h5,
                       snakemake.output.report, snakemake.params.windows)
