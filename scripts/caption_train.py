from vgs.caption.train import run_training
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    run_training(snakemake.input.feats, snakemake.input.images, snakemake.input.utterances,
                 dict(snakemake.params.train), snakemake.params.checkpoint, snakemake.output.model,
                 snakemake.output.history, snakemake.params.mem_mb)
