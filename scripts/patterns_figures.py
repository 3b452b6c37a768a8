from vgs.patterns.stage import run_figures
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    i, o = snakemake.input, snakemake.output
    run_figures(i.groundings, i.clusters, i.fbank, i.words, snakemake.params.patterns,
                {k: o[k] for k in ("fig1", "fig2", "fig3", "fig4")})
