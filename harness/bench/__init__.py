"""Benchmarks: training throughput against a reference loop, the profiler and engine comparisons; no run depends on them."""
