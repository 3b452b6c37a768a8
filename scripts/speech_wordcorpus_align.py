from vgs.runtime import rule_logging
from vgs.speech.wordcorpus import wordcorpus_align

with rule_logging(snakemake):
    wordcorpus_align(snakemake.input.corpus, snakemake.params.ctm, snakemake.wildcards.aligner,
                     snakemake.params.settings, snakemake.output.textgrids, snakemake.output.segments,
                     snakemake.output.report, threads=snakemake.threads)
