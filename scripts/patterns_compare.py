from vgs.patterns.compare import run_compare
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    i = snakemake.input
    run_compare(i.towers, i.convmap, i.fbank, i.vad, i.utterances, i.images, i.onnx, snakemake.params.patterns,
                snakemake.output.json, snakemake.output.md, snakemake.threads)
