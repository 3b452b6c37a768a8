from vgs.runtime import rule_logging, set_threads
from vgs.vision.stage import export

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    export(snakemake.wildcards.encoder, int(snakemake.wildcards.size), snakemake.output[0])
