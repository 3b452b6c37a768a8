from vgs.asr.row import cascade_row
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    cascade_row(snakemake.input.metrics, snakemake.input.wer, snakemake.params.lm,
                snakemake.params.trained_on_asr, snakemake.wildcards.system, snakemake.output[0])
