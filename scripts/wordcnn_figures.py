from vgs.runtime import rule_logging
from vgs.wordcnn.figures import plot_conv1_moved, plot_filters, plot_word_window

with rule_logging(snakemake):
    plot_filters(snakemake.input.model, snakemake.output.filters)
    plot_conv1_moved(snakemake.input.model, snakemake.output.moved)
    plot_word_window(snakemake.input.windows, snakemake.output.window, snakemake.params.word)
