"""One label's runs over several engine seeds, summarised as that label's result.

Owns: a number over seeds (mean, sample standard deviation, quartiles), and the paired
difference of two labels seed by seed ("fgd-plus lower on 4 of 5 seeds"). A policy's result
is never one run: with one seed the report calls it a single run. Must not know how runs are
made or how the report lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spread:
    """One number per engine seed, in seed order (seeds where it is undefined left out)."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def sd(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    def quartiles(self) -> tuple[float, float] | None:
        return (float(np.percentile(self.values, 25)), float(np.percentile(self.values, 75))) if self.values else None

    def text(self, digits: int = 1) -> str:
        """"mean ± sd" ("–" without values; the mean alone for one seed)."""
        if not self.values:
            return "–"
        mean = f"{self.mean:.{digits}f}"
        return mean if self.sd is None else f"{mean} ± {self.sd:.{digits}f}"

    def as_dict(self) -> dict:
        q = self.quartiles()
        return {"mean": _round(self.mean), "sd": _round(self.sd), "p25": _round(q and q[0]),
                "p75": _round(q and q[1]), "per_seed": [_round(v) for v in self.values]}


@dataclass(frozen=True)
class Paired:
    """`a` minus `b`, seed by seed (seeds where either is undefined left out)."""

    a: str
    b: str
    diffs: tuple[float, ...]
    lower_better: bool

    @property
    def mean(self) -> float:
        return float(np.mean(self.diffs)) if self.diffs else 0.0

    @property
    def better_on(self) -> int:
        """Seeds on which `a` did better than `b`."""
        return sum(1 for d in self.diffs if (d < 0 if self.lower_better else d > 0))

    @property
    def worse_on_average(self) -> bool:
        return self.mean > 0 if self.lower_better else self.mean < 0

    def sentence(self) -> str:
        n = len(self.diffs)
        good, bad = ("lower", "higher") if self.lower_better else ("higher", "lower")
        ties = sum(1 for d in self.diffs if d == 0)
        equal = f", equal on {ties}" if ties else ""
        if self.worse_on_average:
            return f"{self.a} {bad} on average ({self.mean:+.1f}), {good} on {self.better_on} of {n} seeds{equal}"
        return f"{self.a} {good} on {self.better_on} of {n} seeds{equal} (mean difference {self.mean:+.1f})"

    def as_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "mean_difference": _round(self.mean), "seeds": len(self.diffs),
                "a_better_on": self.better_on, "a_worse_on_average": self.worse_on_average}


def paired(a: str, a_values: Spread, b: str, b_values: Spread, *, lower_better: bool) -> Paired:
    """The paired difference; both spreads must hold the same seeds in the same order."""
    return Paired(a, b, tuple(x - y for x, y in zip(a_values.values, b_values.values, strict=True)), lower_better)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)
