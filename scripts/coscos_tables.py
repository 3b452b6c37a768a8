from vgs.coscos.evaluate import write_tables
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    write_tables(list(snakemake.input), list(snakemake.params.ks), snakemake.output.json,
                 snakemake.output.md, snakemake.output.html)
