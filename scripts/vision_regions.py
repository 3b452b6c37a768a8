from vgs.runtime import rule_logging
from vgs.vision.stage import build_regions

with rule_logging(snakemake):
    build_regions(snakemake.input.images, snakemake.input.onnx, snakemake.output.h5,
                  snakemake.output.stats, snakemake.params.vision, snakemake.threads,
                  shard=snakemake.wildcards.scatteritem,
                  score_onnx=snakemake.input.score_onnx[0] if snakemake.input.score_onnx else None)
