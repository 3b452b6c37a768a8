from vgs.runtime import rule_logging
from vgs.wordcnn.train import train

with rule_logging(snakemake):
    train(snakemake.input.windows, snakemake.output.model, snakemake.output.metrics,
          {**snakemake.params.train, "threads": snakemake.threads})
