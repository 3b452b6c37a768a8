from vgs.patterns.vad import run_vad_report
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    run_vad_report(snakemake.input.vad, snakemake.params.words, snakemake.output.report)
