from vgs.patterns.stage import run_cluster
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    run_cluster(snakemake.input[0], snakemake.output[0], snakemake.params.cluster)
