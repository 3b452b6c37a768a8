"""Synthetic corpus generation: scenes, captions, speech with word times."""
