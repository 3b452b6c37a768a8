from vgs.fragment.train import run_training
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    run_training(snakemake.input.regions, snakemake.input.words, snakemake.input.utterances,
                 dict(snakemake.params.train), snakemake.params.checkpoint,
                 snakemake.output.model, snakemake.output.history, snakemake.params.eval_mem_mb)
