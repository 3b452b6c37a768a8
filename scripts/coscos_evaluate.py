from vgs.coscos.evaluate import evaluate_system
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    evaluate_system(list(snakemake.input.models), snakemake.input.tokens, snakemake.input.fbank,
                    snakemake.input.regions, snakemake.input.utterances,
                    {"frames": snakemake.params.frames, "eval": dict(snakemake.params.eval)},
                    snakemake.output[0], snakemake.wildcards.system)
