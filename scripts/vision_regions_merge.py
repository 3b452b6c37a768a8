from vgs.runtime import rule_logging
from vgs.vision.stage import merge_regions

with rule_logging(snakemake):
    merge_regions(snakemake.input.h5, snakemake.input.stats, snakemake.output.h5,
                  snakemake.output.stats, snakemake.params.vision)
