from vgs.runtime import rule_logging
from vgs.vision.stage import build_convmap

with rule_logging(snakemake):
    build_convmap(snakemake.input.images, snakemake.input.onnx, snakemake.output[0],
                  snakemake.params.vision, snakemake.threads, shard=snakemake.wildcards.scatteritem)
