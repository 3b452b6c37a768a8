from vgs.fragment.textvec import write_text_word_vectors
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    write_text_word_vectors(snakemake.input.fit, snakemake.input.emit, snakemake.output[0],
                            snakemake.params.textvec)
