from vgs.coscos.data import select_tokens
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    select_tokens(snakemake.input.utterances, snakemake.input.segments, snakemake.input.fbank,
                  dict(snakemake.params.tokens), snakemake.output.tokens, snakemake.output.report,
                  snakemake.wildcards.system)
