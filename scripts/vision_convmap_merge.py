from vgs.runtime import rule_logging
from vgs.vision.stage import merge_convmap

with rule_logging(snakemake):
    merge_convmap(snakemake.input, snakemake.output[0], snakemake.params.vision)
