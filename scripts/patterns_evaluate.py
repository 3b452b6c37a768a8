from vgs.patterns.stage import run_evaluate
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    run_evaluate(snakemake.input.groundings, snakemake.input.clusters, snakemake.params.words,
                 snakemake.params.boxes, snakemake.params.patterns, snakemake.output.json, snakemake.output.md)
