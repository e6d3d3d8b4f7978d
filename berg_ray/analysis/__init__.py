"""Analyses of in-silico experiments: tuning indices, comparison with in vivo values, receptive fields."""
