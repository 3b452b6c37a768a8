from vgs.runtime import rule_logging, shard_slice
from vgs.speech.align import read_utterances
from vgs.speech.features import extract_features

with rule_logging(snakemake):
    u = read_utterances(snakemake.input.utterances)
    items = list(zip(u.utt_id, u.wav))
    extract_features(items[shard_slice(len(items), snakemake.wildcards.scatteritem)],
                     snakemake.params.fbank, snakemake.output.h5, snakemake.output.report,
                     threads=snakemake.threads)
