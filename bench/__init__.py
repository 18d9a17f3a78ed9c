"""Benchmarks for testservers: run ``python -m bench``."""
