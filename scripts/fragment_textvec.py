from vgs.fragment.textvec import write_text_word_vectors
from vgs.runtime import rule_logging

with rule_logging(snakemake):
    write_text_word_vectors(snakemake.input.utterances, snakemake.output[0], snakemake.params.textvec)
