"""ramp: world-model-conditioned continual RL for VLA robot policies, distributed on Ray."""

__version__ = "0.1.0"
