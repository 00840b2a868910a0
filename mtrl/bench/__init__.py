"""Throughput benchmarks behind `mtrl bench NAME` (ratios against peers in the same run)."""
