from vgs.runtime import rule_logging
from vgs.wordcnn.report import table2

with rule_logging(snakemake):
    table2(snakemake.input.metrics, snakemake.input.model, snakemake.input.captions,
           snakemake.output.json, snakemake.output.md)
