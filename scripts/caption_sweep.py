from vgs.caption.sweep import write_sweep
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    sweep = snakemake.params.sweep
    write_sweep(list(snakemake.input), sweep["values"], sweep["key"], snakemake.params.ks, sweep["system"],
                sweep["epochs"], snakemake.output.json, snakemake.output.md)
