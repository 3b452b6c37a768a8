from pathlib import Path

from vgs.runtime import rule_logging
from vgs.vision.quality import write_quality

with rule_logging(snakemake):
    write_quality(snakemake.input.h5, Path(snakemake.input.truth) / "ground_truth" / "boxes.tsv",
                  snakemake.output[0], snakemake.params.iou)
