"""Benchmarks run by `ramp bench NAME`; each measures ramp against a baseline in the same run."""
