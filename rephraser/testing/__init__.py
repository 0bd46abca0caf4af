"""Helpers for tests and benchmarks: tiny offline tokenizers and models (no hub)."""
