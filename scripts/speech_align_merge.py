import os

from vgs.runtime import rule_logging
from vgs.speech.align import merge_alignments

with rule_logging(snakemake):
    truth = snakemake.input.truth
    merge_alignments(snakemake.input.textgrids, snakemake.input.segments, snakemake.input.reports,
                     snakemake.input.utterances, snakemake.output.textgrids, snakemake.output.segments,
                     snakemake.output.report,
                     truth_tsv=os.path.join(truth[0], "ground_truth", "word_times.tsv") if truth else None)
