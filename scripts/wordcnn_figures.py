from vgs.runtime import rule_logging
from vgs.wordcnn.figures import plot_filters, plot_word_window

with rule_logging(snakemake):
    plot_filters(snakemake.input.model, snakemake.output.filters)
    plot_word_window(snakemake.input.windows, snakemake.output.window, snakemake.params.word)
