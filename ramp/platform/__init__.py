"""The pure core of ramp: data, models, RL maths, envs, tracking.

Nothing under this package imports ray, so every piece here is testable in a plain process.
"""
