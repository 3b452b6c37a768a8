"""Corpus readers: the Flickr8k + FACC layout (real or synthetic) and word-aligned corpora."""
