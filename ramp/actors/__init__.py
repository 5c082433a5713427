"""Thin Ray actors: each holds state and calls the pure core in ramp.platform."""
