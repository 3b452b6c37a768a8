import os

from vgs.runtime import rule_logging
from vgs.speech.ssl import SSLFeaturizer
from vgs.speech.wordcorpus import wordcorpus_features

with rule_logging(snakemake):
    cfg = dict(snakemake.params.ssl)
    featurizer = SSLFeaturizer(cfg)  # first: a checkpoint that cannot be found stops the rule here
    wordcorpus_features(os.path.join(snakemake.input.corpus, "wav.scp"), snakemake.output.h5,
                        snakemake.output.report, cfg, threads=snakemake.threads, featurizer=featurizer)
