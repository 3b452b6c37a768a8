from vgs.coscos.figures import plot_curves
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    plot_curves({s: list(p) for s, p in snakemake.params.histories.items()}, snakemake.output[0])
