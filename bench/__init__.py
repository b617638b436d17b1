"""Benchmarks: each prints a table and compares against baselines measured in the same run."""
