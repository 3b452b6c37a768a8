"""Speech front end: forced alignment, log-mel features and fixed 1-second word windows."""
