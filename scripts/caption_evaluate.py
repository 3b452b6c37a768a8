from vgs.caption.evaluate import evaluate_system
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    evaluate_system(list(snakemake.input.models), snakemake.input.feats, snakemake.input.images,
                    snakemake.input.utterances, dict(snakemake.params.eval), snakemake.output.metrics,
                    snakemake.wildcards.system, snakemake.wildcards.mode, snakemake.params.paper)
