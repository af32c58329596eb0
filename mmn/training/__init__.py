"""Training and evaluation of MMN: datasets, augmentation, the mmengine runner, metrics.

Needs the ``[train]`` extra (mmengine, tensorboard); inference (:mod:`mmn`) does not. The
command lines are ``python -m mmn.train`` and ``python -m mmn.test``.
"""
