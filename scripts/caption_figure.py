from vgs.caption.figures import training_figure
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    training_figure(list(snakemake.input), snakemake.output[0], title=f"caption system {snakemake.wildcards.system}")
