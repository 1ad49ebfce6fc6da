"""Rehearsal verdicts (`rehearsal`) and, in the server, the rehearsals still to play off the
scheduling path.

A rehearsal costs seconds (eight fills of a 1,600-GPU miniature); the extender answers
kube-scheduler in milliseconds. So in the server a policy does not play one where it scores: it
asks the board, which hands back the verdict when one was settled for that key and otherwise
notes the rehearsal as wanted and hands back the last verdict settled (the previous workload's,
the best guess while the new one plays), or None before any, which a policy reads as FGD's order.
The server plays what is wanted in a worker thread and settles it here (`extender.app`). The
simulator, tests and `explain` pass no board: they play the rehearsal where they score, so their
placements are a pure function of their inputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Verdict:
    """What a rehearsal found: per replica, the candidate's and the reference's unallocated GPU %."""

    candidate: tuple[float, ...]
    reference: tuple[float, ...]
    gpus: int
    """GPUs in the miniature played."""

    @property
    def delta(self) -> float:
        """Δ (module doc), percentage points; 0 when nothing was played."""
        if not self.candidate:
            return 0.0
        return float(np.mean(np.subtract(self.candidate, self.reference)))

    @property
    def standard_error(self) -> float:
        """Of Δ, from the paired replicas (0 with fewer than two)."""
        if len(self.candidate) < 2:
            return 0.0
        diffs = np.subtract(self.candidate, self.reference)
        return float(np.std(diffs, ddof=1) / np.sqrt(len(diffs)))

    @property
    def candidate_wins(self) -> bool:
        """The candidate left less GPU unallocated by more than the rehearsal's own noise, Δ + se < 0.
        A near tie keeps the reference: choosing by a coin flip between two orders that place alike
        costs nothing on average but loses on half the clusters, one standard error at a time
        (PAI 2020 with the gpuspec33 pods, where the terms chose on Δ < 0 alone: +0.02 ± 0.01 pp)."""
        return self.delta + self.standard_error < 0

    def describe(self, candidate: str, reference: str) -> str:
        winner = candidate if self.candidate_wins else reference
        return (f"rehearsal on {self.gpus} GPUs, {len(self.candidate)} fills: {candidate} leaves "
                f"{self.delta:+.2f} ± {self.standard_error:.2f} pp of the GPU unallocated against {reference}, "
                f"so {winner} decides")


Play = Callable[[], Verdict]
"""A rehearsal bound to its inputs (all immutable), safe to play in another thread."""


class Rehearsals:
    """The server's board: verdicts settled per key (the last `KEEP`), and the rehearsal wanted now.

    Only the latest rehearsal asked for is kept as wanted: a workload mix replaced while its
    rehearsal waited needs no verdict any more."""

    KEEP = 8

    def __init__(self) -> None:
        self._settled: OrderedDict[Hashable, Verdict] = OrderedDict()
        self._wanted: tuple[Hashable, Play] | None = None

    def ask(self, key: Hashable, play: Play) -> Verdict | None:
        """The verdict for `key` if settled; else the last one settled (None before any), and
        `play` noted as the one wanted."""
        if key in self._settled:
            self._settled.move_to_end(key)
            return self._settled[key]
        if self._wanted is None or self._wanted[0] != key:
            self._wanted = (key, play)
        return next(reversed(self._settled.values()), None)

    def wanted(self) -> tuple[Hashable, Play] | None:
        """The latest rehearsal asked for and not settled; handed out once."""
        out, self._wanted = self._wanted, None
        return out

    def settle(self, key: Hashable, verdict: Verdict) -> None:
        self._settled[key] = verdict
        self._settled.move_to_end(key)
        while len(self._settled) > self.KEEP:
            self._settled.popitem(last=False)

    @property
    def settled(self) -> int:
        return len(self._settled)
