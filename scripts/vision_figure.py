from pathlib import Path

from vgs.runtime import rule_logging
from vgs.vision.figures import regions_figure

with rule_logging(snakemake):
    truth = snakemake.input.truth
    regions_figure(snakemake.input.h5, snakemake.input.images, snakemake.output[0],
                   snakemake.params.n_images,
                   boxes_tsv=Path(truth[0]) / "ground_truth" / "boxes.tsv" if truth else None)
