"""argparse types shared by the command lines: numbers checked when the flags are parsed,
so a bad value is a usage error (exit 2) before any work."""
from __future__ import annotations

import argparse
import math

__all__ = ["non_negative_float", "non_negative_int", "positive_float", "positive_int", "unit_interval"]


def _parse(text: str, kind: type, what: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = int(_parse(text, int, "a whole number"))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(_parse(text, int, "a whole number"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(_parse(text, float, "a number"))
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(_parse(text, float, "a number"))
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number ≥ 0, got {text}")
    return value


def unit_interval(text: str) -> float:
    value = float(_parse(text, float, "a number"))
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, got {text}")
    return value
