"""Team quotas: who a pod belongs to, what it is charged, and where each team stands (DESIGN §4).

Owns: the teams configuration (frozen, validated once), the quota unit, team resolution, usage
accounting per team (allocated and reserved), borrowing, and the weighted fair share that
reclaim ranks teams by. Must not know: HTTP, Kubernetes objects (a ResourceQuota arrives as its
`spec.hard` mapping), the clock, how victims are chosen (`reclaim`) or evicted (an adapter).

Units: every amount is an integer number of thousandths of a quota unit ("milli-units"). With
`quotaUnit: gpu` one unit is one GPU's compute, so a 500-milli share costs 500 and a whole GPU
1000. With `quotaUnit: a100-equivalent` a GPU of model M is worth `weight(M)` units (H100 2.0,
A100 1.0, T4 0.25, ...), so a team's quota means compute, not card count: a whole H100 costs 2000.

Team resolution: `TeamSource.POD` (the default) takes a pod's `gpusched.io/team` label first;
`TeamSource.NAMESPACE` only its namespace's label or name, so pod authors cannot pick a team.

Teams: configured teams win; a team derived from a namespace ResourceQuota fills in for a name
the configuration does not list; any other team is a *default* team (guaranteed 0, no max,
weight 1): it may borrow idle GPUs and is the first to give them back. Quotas are enforced only
when at least one team is configured or derived; otherwise nothing is borrowed or limited.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction

import numpy as np

from scheduler.core.contract import MILLI_PER_GPU, TEAM_LABEL
from scheduler.core.quantity import QuantityError, parse_quantity
from scheduler.core.request import PodRequest
from scheduler.core.selector import ModelSelector, SelectorError
from scheduler.core.state import ClusterState

QUOTA_GPU_RESOURCES = ("requests.nvidia.com/gpu", "nvidia.com/gpu")
QUOTA_MILLI_RESOURCES = ("requests.gpusched.io/gpu-milli", "gpusched.io/gpu-milli")


class QuotaConfigError(ValueError):
    """A teams configuration that cannot be used; the message names the field."""


class QuotaUnit(Enum):
    GPU = "gpu"
    """One unit is one GPU's compute, whatever the model."""
    A100_EQUIVALENT = "a100-equivalent"
    """One unit is one A100's compute; other models count by their configured weight."""

    @property
    def label(self) -> str:
        return "GPUs" if self is QuotaUnit.GPU else "A100-equivalents"


class TeamSource(Enum):
    """Who names a pod's team (`teamSource` in the config file; docs/gangs-and-quotas.md)."""

    POD = "pod"
    """The pod's `gpusched.io/team` label, else its namespace's, else the namespace name (DESIGN §3).
    Any pod author can charge any team: for clusters whose users are trusted with each other's quota."""
    NAMESPACE = "namespace"
    """The namespace's `gpusched.io/team` label, else the namespace name; a pod's own label is ignored,
    so a team is charged only by pods in namespaces its owners (those who may label namespaces) chose."""


@dataclass(frozen=True)
class Team:
    """A team's quota in milli-units: it may always use `guaranteed_milli`, borrow up to `max_milli`."""

    name: str
    guaranteed_milli: int = 0
    max_milli: int | None = None
    """None: no limit beyond what is idle."""
    weight: float = 1.0
    """Its share of the capacity nobody is guaranteed, relative to other teams' weights."""
    source: str = "config"
    """Where it came from: config, resourcequota or default."""

    def __post_init__(self) -> None:
        if not self.name:
            raise QuotaConfigError("a team needs a non-empty name")
        if self.guaranteed_milli < 0:
            raise QuotaConfigError(f"team {self.name}: 'guaranteed' cannot be negative")
        if self.max_milli is not None and self.max_milli < self.guaranteed_milli:
            raise QuotaConfigError(f"team {self.name}: 'max' ({format_units(self.max_milli)}) is below "
                                   f"'guaranteed' ({format_units(self.guaranteed_milli)})")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise QuotaConfigError(f"team {self.name}: 'weight' must be a positive number, got {self.weight!r}")


@dataclass(frozen=True)
class ModelWeight:
    """How many quota units one GPU of the models matching `pattern` is worth."""

    pattern: str
    weight: float
    selector: ModelSelector = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "selector", ModelSelector.parse(self.pattern))
        except SelectorError as e:
            raise QuotaConfigError(f"modelWeights: {e}") from None
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise QuotaConfigError(f"modelWeights[{self.pattern}]: weight must be a positive number")


@dataclass(frozen=True)
class QuotaConfig:
    teams: tuple[Team, ...] = ()
    unit: QuotaUnit = QuotaUnit.GPU
    model_weights: tuple[ModelWeight, ...] = ()
    """First match wins, in order; a model no pattern matches weighs `default_weight`."""
    default_weight: float = 1.0
    team_source: TeamSource = TeamSource.POD

    def __post_init__(self) -> None:
        names = [t.name for t in self.teams]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise QuotaConfigError(f"teams: {duplicates[0]} is listed twice")
        if not (math.isfinite(self.default_weight) and self.default_weight > 0):
            raise QuotaConfigError("defaultModelWeight must be a positive number")

    def weight_of(self, model: str) -> float:
        if self.unit is QuotaUnit.GPU:
            return 1.0
        for entry in self.model_weights:
            if entry.selector.matches(model):
                return entry.weight
        return self.default_weight


def parse_units(value: object, where: str) -> int:
    """A quota amount ("8", 12.5, "2500m") in milli-units; finer than 1/1000 is an error."""
    try:
        exact = parse_quantity(value) * 1000
    except QuantityError:
        raise QuotaConfigError(f"{where}: {value!r} is not a number of units") from None
    if exact < 0:
        raise QuotaConfigError(f"{where}: cannot be negative, got {value!r}")
    if exact.denominator != 1:
        raise QuotaConfigError(f"{where}: {value!r} is finer than a thousandth of a unit")
    return int(exact)


def format_units(milli: int | None) -> str:
    """12500 -> "12.5", 250 -> "0.25", None -> "unlimited"."""
    if milli is None:
        return "unlimited"
    whole, frac = divmod(int(milli), 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)


def team_from_resource_quotas(namespace: str, hards: Sequence[Mapping[str, object]], *,
                              team: str | None = None) -> Team | None:
    """The team a namespace's ResourceQuotas describe, or None when none limits GPUs.

    `hards` are the `spec.hard` maps of the namespace's ResourceQuota objects. GPU compute is
    `requests.nvidia.com/gpu` (whole GPUs) plus `requests.gpusched.io/gpu-milli` (shares); where
    several quotas limit the same resource the smallest wins, as the API server enforces. The
    quota is the team's guarantee and its max (the API server refuses pods beyond it anyway).
    """
    limits: dict[str, Fraction] = {}
    for hard in hards:
        for group in (QUOTA_GPU_RESOURCES, QUOTA_MILLI_RESOURCES):
            for key in group:
                if key in hard:
                    try:
                        value = parse_quantity(hard[key])
                    except QuantityError:
                        continue  # the API server validated it; an unreadable one limits nothing here
                    if value < 0:
                        continue  # likewise: the API server refuses negative quotas
                    limits[group[0]] = min(value, limits.get(group[0], value))
    if not limits:
        return None
    gpus = limits.get(QUOTA_GPU_RESOURCES[0], Fraction(0))
    milli = limits.get(QUOTA_MILLI_RESOURCES[0], Fraction(0))
    total = int(gpus * MILLI_PER_GPU + milli)
    return Team(team or namespace, guaranteed_milli=total, max_milli=total, source="resourcequota")


@dataclass(frozen=True)
class Standing:
    """One team at one moment: usage against guarantee, max and weighted fair share."""

    team: Team
    used_milli: int
    """Allocated plus reserved."""
    reserved_milli: int
    fair_milli: float
    """guaranteed + weight / Σ weights × (capacity − Σ guaranteed), at least the guarantee."""
    enforced: bool = True
    """Quotas are on (some team is configured or derived); without them nothing is borrowed."""

    @property
    def borrowed_milli(self) -> int:
        """Use above the guarantee now (not the pods flagged borrowed at bind: older pods may have left)."""
        return max(0, self.used_milli - self.team.guaranteed_milli) if self.enforced else 0

    @property
    def distance(self) -> float:
        """How far above its fair share, per unit of weight (reclaim takes from the largest first)."""
        return (self.used_milli - self.fair_milli) / self.team.weight


@dataclass(frozen=True)
class Charge:
    team: str
    milli: int
    reserved: bool


class QuotaBook:
    """Usage per team, kept in step with the engine's allocations and reservations."""

    def __init__(self, config: QuotaConfig | None = None) -> None:
        self.config = config or QuotaConfig()
        self._derived: dict[str, Team] = {}
        self._namespace_labels: dict[str, Mapping[str, str]] = {}
        self._charges: dict[str, Charge] = {}
        self._allocated: Counter[str] = Counter()
        self._reserved: Counter[str] = Counter()
        self._configured = {t.name: t for t in self.config.teams}

    # ---------------------------------------------------------- configuration
    def set_config(self, config: QuotaConfig) -> None:
        """Replace the configured teams, unit and weights (charges already made stay as made)."""
        self.config = config
        self._configured = {t.name: t for t in config.teams}

    def set_derived_team(self, team: Team) -> None:
        """A team from a namespace ResourceQuota (`team_from_resource_quotas`)."""
        self._derived[team.name] = team

    def remove_derived_team(self, name: str) -> None:
        self._derived.pop(name, None)

    def set_namespace_labels(self, namespace: str, labels: Mapping[str, str] | None) -> None:
        if labels:
            self._namespace_labels[namespace] = dict(labels)
        else:
            self._namespace_labels.pop(namespace, None)

    @property
    def enabled(self) -> bool:
        return bool(self._configured or self._derived)

    def team(self, name: str) -> Team:
        return self._configured.get(name) or self._derived.get(name) or Team(name, source="default")

    def team_of(self, pod: PodRequest) -> str:
        """Label `gpusched.io/team` on the pod (with `TeamSource.POD`), else on its namespace, else
        the namespace name."""
        return self.team_of_record(pod.team_label or "", pod.namespace)

    def team_of_record(self, team: str, namespace: str) -> str:
        """The team of an allocation whose record says `team` (the pod's label or the team resolved
        at bind; "" when none): with `TeamSource.NAMESPACE` the namespace decides again."""
        if team and self.config.team_source is TeamSource.POD:
            return team
        return self.team_of_namespace(namespace)

    def team_of_namespace(self, namespace: str) -> str:
        return self._namespace_labels.get(namespace, {}).get(TEAM_LABEL) or namespace

    # ------------------------------------------------------------------ books
    def charge(self, uid: str, team: str, milli: int, *, reserved: bool) -> None:
        self.uncharge(uid)
        self._charges[uid] = Charge(team, milli, reserved)
        (self._reserved if reserved else self._allocated)[team] += milli

    def settle(self, uid: str) -> None:
        """A reserved charge became an allocation (the member was bound)."""
        charge = self._charges.get(uid)
        if charge is not None and charge.reserved:
            self.charge(uid, charge.team, charge.milli, reserved=False)

    def unsettle(self, uid: str) -> None:
        """An allocation went back to being a reservation (its bind could not be committed)."""
        charge = self._charges.get(uid)
        if charge is not None and not charge.reserved:
            self.charge(uid, charge.team, charge.milli, reserved=True)

    def uncharge(self, uid: str) -> Charge | None:
        charge = self._charges.pop(uid, None)
        if charge is not None:
            book = self._reserved if charge.reserved else self._allocated
            book[charge.team] -= charge.milli
            if not book[charge.team]:
                del book[charge.team]
        return charge

    def charge_of(self, uid: str) -> Charge | None:
        return self._charges.get(uid)

    def used(self, team: str) -> int:
        return self._allocated.get(team, 0) + self._reserved.get(team, 0)

    def over_max(self, team: str, ask_milli: int) -> str:
        """Why `ask_milli` more would push `team` above its max, or ""."""
        if not self.enabled:
            return ""
        limit = self.team(team).max_milli
        used = self.used(team)
        if limit is None or used + ask_milli <= limit:
            return ""
        unit = self.config.unit.label
        return (f"team {team}: {format_units(used)} {unit} in use + {format_units(ask_milli)} asked "
                f"would exceed its max of {format_units(limit)}")

    def borrows(self, team: str, ask_milli: int) -> bool:
        """Whether `ask_milli` more takes `team` above its guarantee (the pod is then borrowed)."""
        return self.enabled and self.used(team) + ask_milli > self.team(team).guaranteed_milli

    def within_guarantee(self, team: str, ask_milli: int) -> bool:
        return self.enabled and self.used(team) + ask_milli <= self.team(team).guaranteed_milli

    def teams(self) -> list[str]:
        """Every team with a quota or a charge, sorted."""
        return sorted(set(self._configured) | set(self._derived) | set(self._allocated) | set(self._reserved))

    def standings(self, capacity_milli: int) -> dict[str, Standing]:
        """Each team's usage and weighted fair share of `capacity_milli`.

        fair(t) = guaranteed(t) + weight(t) / Σ weight × max(0, capacity − Σ guaranteed), over
        every team listed by `teams()`: the idle capacity nobody is guaranteed, split by weight.
        """
        names = self.teams()
        teams = [self.team(n) for n in names]
        spare = max(0, capacity_milli - sum(t.guaranteed_milli for t in teams))
        total_weight = sum(t.weight for t in teams) or 1.0
        return {t.name: Standing(t, self.used(t.name), self._reserved.get(t.name, 0),
                                 t.guaranteed_milli + t.weight / total_weight * spare, self.enabled) for t in teams}

    # ---------------------------------------------------------------- charges
    def model_weights(self, state: ClusterState) -> np.ndarray:
        """float64 [len(models) + 1]: units per GPU by model id; the last entry (id -1) is 0."""
        return np.array([self.config.weight_of(m) for m in state.models] + [0.0])

    def grant_charge(self, state: ClusterState, row: int | None, slots: Iterable[int], milli: int) -> int:
        """Milli-units for `milli` of each GPU in `slots` on node `row` (row None: model unknown)."""
        slots = list(slots)
        if self.config.unit is QuotaUnit.GPU or row is None:
            return milli * len(slots)
        weights = self.model_weights(state)
        return round(sum(milli * weights[state.model_id[row, s]] for s in slots if 0 <= s < state.slots))

    def ask_by_row(self, state: ClusterState, pod: PodRequest, rows: np.ndarray, models: np.ndarray) -> np.ndarray:
        """int64 [B]: at most what `pod` would be charged on each row (the dearest allowed GPU)."""
        if self.config.unit is QuotaUnit.GPU:
            return np.full(len(rows), pod.total_milli, np.int64)
        ids = state.model_id[rows]
        allowed = state.usable[rows] & models[ids]
        dearest = np.where(allowed, self.model_weights(state)[ids], 0.0).max(1, initial=0.0)
        return np.round(pod.total_milli * dearest).astype(np.int64)

    def capacity(self, state: ClusterState) -> int:
        """Milli-units of every usable GPU: what fair shares split."""
        rows = state.live_rows()
        ids = state.model_id[rows]
        usable = state.usable[rows] & ~state.unavailable[rows][:, None]
        return round(float(np.where(usable, self.model_weights(state)[ids], 0.0).sum()) * MILLI_PER_GPU)
