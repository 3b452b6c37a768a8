from vgs.runtime import rule_logging
from vgs.speech.windows import caption_windows

with rule_logging(snakemake):
    caption_windows(snakemake.input.fbank, snakemake.input.segments, snakemake.output.h5,
                    snakemake.output.report, snakemake.params.windows, snakemake.wildcards.aligner)
