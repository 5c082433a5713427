"""The RL core: plain functions over numpy arrays and torch tensors, never Ray (docs/rl.md).

Import from the module that holds what you need; this package imports nothing up front, so the
labeller does not pay for torch and ``ramp.platform.config`` can import ``rl.settings`` freely.

- ``settings``       the ``rl`` config section (every default of the method)
- ``layout``         many episodes as flat per-step arrays + offsets; checks of an episode table
- ``rewards``        rewards from outcomes, per-task scale into [-1, 0]
- ``advantages``     Monte-Carlo returns, n-step TD and Monte-Carlo advantages
- ``thresholds``     per-task eps (quantile or fixed) and the indicator I = 1[A > eps]
- ``labelling``      the above chained for the labeller
- ``interventions``  takeover / hand-back boundaries and the removal of their artifacts
- ``contract``       ``Conditioning`` and the ``PolicyLoss`` protocol; guidance
- ``objectives``     RAMP, RECAP, AWR, BC and ``build_objective``
- ``collapse``       advantage-collapse metrics and the alarm
- ``values``         world-model values of whole episodes (imports torch and the models)
- ``relabel``        the labelling pass: values -> label sidecars, metrics, plot data
"""
