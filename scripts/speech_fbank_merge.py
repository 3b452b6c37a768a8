from vgs.runtime import rule_logging
from vgs.speech.features import merge_features

with rule_logging(snakemake):
    merge_features(snakemake.input.h5, snakemake.input.reports, snakemake.output.h5,
                   snakemake.output.report, ark=snakemake.output.ark, scp=snakemake.output.scp)
