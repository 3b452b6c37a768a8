from vgs.asr.decode import decode_corpus
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    decode_corpus(snakemake.input.utterances, snakemake.wildcards.lm, snakemake.params.decoder,
                  snakemake.params.splits, snakemake.output.hyps, snakemake.output.wer,
                  threads=snakemake.threads, lm_path=snakemake.input.get("lm"),
                  dict_path=snakemake.input.get("dict"))
