"""Retry delays for the data plane: exponential with jitter, so retries from many jobs spread out."""

from __future__ import annotations

import random

__all__ = ["backoff_seconds"]


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Attempt 1 waits about ``base``, doubling each attempt up to ``cap``; jittered to 50-100 %."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
