from vgs.recall.table import write
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    write(list(snakemake.input), dict(snakemake.params.recall), snakemake.output.json, snakemake.output.md,
          snakemake.output.html)
