# -*- test-case-name: frptx.test.test_backoff -*-
"""frpc's re-login schedule as a pure function.

``ReconnectingClientFactory`` computes its delays itself, and how it does so has
changed between Twisted releases (where it starts, when it multiplies, jitter that
compounds from one delay to the next).  frpc's schedule is part of its behaviour,
so it is ours: ``LoginFactory`` asks ``login_delay`` for the delay before each
retry and only borrows the factory's reconnecting machinery.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """1 s doubling to 20 s, each delay spread by ±``jitter`` (frp's client uses the same shape)."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 20.0
    jitter: float = 0.1

    def base_delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0 = the first retry), without jitter."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        delay = self.initial
        for _ in range(attempt):  # no float overflow for large attempt counts
            delay *= self.factor
            if delay >= self.maximum:
                return self.maximum
        return min(delay, self.maximum)

    def delay(self, attempt: int, uniform: Callable[[], float] = random.random) -> float:
        """``base_delay(attempt)`` spread by a factor in [1 - jitter, 1 + jitter].

        ``uniform`` returns a number in [0, 1); each delay is drawn independently, so the
        spread never compounds from one retry to the next.
        """
        base = self.base_delay(attempt)
        return base * (1.0 + self.jitter * (2.0 * uniform() - 1.0))


#: the policy frpc uses for re-login
LOGIN_BACKOFF = BackoffPolicy()
