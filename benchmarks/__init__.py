"""Benchmark of the whole pipeline against its limits and Prometheus agent mode."""
