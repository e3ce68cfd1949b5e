"""Tests of the benchmark harness (tiny durations; no peers needed)."""
