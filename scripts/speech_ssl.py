from vgs.runtime import rule_logging
from vgs.speech.align import read_utterances
from vgs.speech.features import extract_features
from vgs.speech.ssl import SSLFeaturizer

with rule_logging(snakemake):
    cfg = dict(snakemake.params.ssl)
    featurizer = SSLFeaturizer(cfg)  # first: a checkpoint that cannot be found stops the rule here
    u = read_utterances(snakemake.input.utterances)
    extract_features(list(zip(u.utt_id, u.wav)), cfg, snakemake.output.h5, snakemake.output.report,
                     threads=snakemake.threads, desc="ssl", featurizer=featurizer)
