"""Serving benchmarks: load generators, peer servers and results (issue 3, item 8)."""
