import os

from vgs.runtime import rule_logging
from vgs.speech.align import align_corpus

with rule_logging(snakemake):
    truth = snakemake.input.truth
    align_corpus(snakemake.input.utterances, snakemake.wildcards.aligner, snakemake.params.settings,
                 snakemake.output.textgrids, snakemake.output.segments, snakemake.output.report,
                 threads=snakemake.threads,
                 truth_tsv=os.path.join(truth[0], "ground_truth", "word_times.tsv") if truth else None,
                 shard=snakemake.wildcards.scatteritem)
