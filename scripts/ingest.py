from pathlib import Path

from vgs.corpus.flickr import ingest
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    ingest(snakemake.input.corpus, Path(snakemake.output.report).parent, snakemake.threads,
           snakemake.params.max_skip_fraction, snakemake.params.plausibility, snakemake.params.min_image_side)
