"""Visually grounded speech (Harwath & Glass 2015 and variants) as a Snakemake pipeline."""
