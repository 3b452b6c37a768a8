from vgs.asr.lm import write_caption_lm
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    write_caption_lm(snakemake.input.utterances, snakemake.output.lm, snakemake.output.dict,
                     snakemake.output.report, snakemake.params.lm)
