from vgs.runtime import rule_logging
from vgs.wordcnn.vectors import extract_vectors

with rule_logging(snakemake):
    extract_vectors(snakemake.input.model, snakemake.input.windows, snakemake.output.vectors,
                    snakemake.output.report, batch_size=snakemake.params.batch_size,
                    threads=snakemake.threads)
