"""The one recall table: every system's test-split ranks, from every stage, in one place."""
