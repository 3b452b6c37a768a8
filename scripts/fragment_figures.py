from vgs.fragment.figures import alignment_figure
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    f = snakemake.params.figure
    alignment_figure(snakemake.input.model, snakemake.input.regions, snakemake.input.words,
                     snakemake.input.utterances, snakemake.input.images, snakemake.output[0],
                     f["images"], f["seed"], f"system: {f['system']}")
