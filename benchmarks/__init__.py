"""Benchmarks and release scripts; run from the repository root, e.g. `python -m benchmarks.ship_models`."""
