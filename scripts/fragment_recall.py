from vgs.fragment.evaluate import merge_rows
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    merge_rows(list(snakemake.input), dict(snakemake.params.fragment), snakemake.output.json,
               snakemake.output.md, snakemake.output.html)
