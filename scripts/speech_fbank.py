from vgs.runtime import rule_logging
from vgs.speech.align import read_utterances
from vgs.speech.features import extract_features

with rule_logging(snakemake):
    u = read_utterances(snakemake.input.utterances)
    extract_features(list(zip(u.utt_id, u.wav)), snakemake.params.fbank, snakemake.output.h5,
                     snakemake.output.report, threads=snakemake.threads, ark=snakemake.output.ark,
                     scp=snakemake.output.scp)
