"""Cross-situational word learning (Synnaeve et al. 2014): spoken content words and image fragments in one space."""
