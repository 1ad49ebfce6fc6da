"""Capped exponential backoff with full jitter, for retries of API calls and watch restarts."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float = 0.1
    cap_s: float = 5.0
    factor: float = 2.0


class Backoff:
    """`next()` = a uniform draw in [0, min(cap, initial * factor**n)] (AWS "full jitter"): retries of
    many clients spread out instead of arriving together. `reset()` after a success."""

    def __init__(self, policy: BackoffPolicy = BackoffPolicy(), *, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        ceiling = min(self.policy.cap_s, self.policy.initial_s * self.policy.factor ** self._attempt)
        self._attempt += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self._attempt = 0
