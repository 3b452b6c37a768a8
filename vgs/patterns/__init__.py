"""Grounding and audio-visual pattern discovery (Harwath & Glass 2017, sec. 4-5) on a trained
whole-caption system: box and segment proposals, VAD, grounding selection, k-means clusters of
both modalities, purity/coverage tables, figures."""
