from vgs.caption.export import export_towers
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    export_towers(snakemake.input.model, snakemake.output.towers)
