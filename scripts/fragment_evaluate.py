from vgs.fragment.evaluate import evaluate_system
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    evaluate_system(list(snakemake.input.models), snakemake.input.regions, snakemake.input.words,
                    snakemake.input.utterances, dict(snakemake.params.eval), snakemake.output.scores,
                    snakemake.output.metrics, snakemake.params.boxes,
                    snakemake.wildcards.system)
