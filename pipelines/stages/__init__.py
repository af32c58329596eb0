"""Stages of the job on a skeleton track: windows, MMN labels, model-free motion heat."""
