from vgs.patterns.vad import run_vad
from vgs.runtime import rule_logging, set_threads

with rule_logging(snakemake):
    set_threads(snakemake.threads)
    p = dict(snakemake.params.vad)
    run_vad(snakemake.input.utterances, snakemake.input.fbank, p, p.pop("split"), snakemake.output.h5, snakemake.threads)
