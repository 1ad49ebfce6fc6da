"""`--config FILE` (and the same sections of a cluster file): teams, quota unit, gang settings.

    quotaUnit: a100-equivalent          # or gpu (the default): what team amounts count
    modelWeights:                       # a100-equivalent only: units per GPU, first match wins
      "H100*": 2.0
      "A100*": 1.0
      "T4": 0.25
    defaultModelWeight: 1.0             # models no pattern matches
    teamSource: pod                     # or namespace: a pod's own gpusched.io/team label is ignored
    teams:                              # amounts in units, milli precision ("12.5", "2500m")
    - {name: vision, guaranteed: 8, max: 16, weight: 2}
    - {name: nlp, guaranteed: 4}        # no max: may borrow whatever is idle
    rackLabel: example.com/rack         # gangs prefer one zone, then one rack
    zoneLabel: topology.kubernetes.io/zone
    gangs: {defaultTimeoutSeconds: 300}
    podGroups:                          # scheduler-plugins PodGroups known without Kubernetes
    - {namespace: ml, name: train-7, minMember: 4}

Validated once into frozen dataclasses; every error is one line naming the file and the field.
Where both a cluster file and `--config` set something, `--config` wins (teams: per name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from scheduler.core.gangs import GangSettings
from scheduler.core.quotas import (
    ModelWeight,
    QuotaConfig,
    QuotaConfigError,
    QuotaUnit,
    Team,
    TeamSource,
    parse_units,
)

KEYS = ("teams", "quotaUnit", "modelWeights", "defaultModelWeight", "teamSource", "rackLabel", "zoneLabel", "gangs",
        "podGroups")


class ConfigError(ValueError):
    """An invalid scheduler configuration; the message names the file and the field."""


@dataclass(frozen=True)
class PodGroup:
    namespace: str
    name: str
    min_member: int


@dataclass(frozen=True)
class GatesConfig:
    """Everything gangs and quotas are configured with."""

    quotas: QuotaConfig = field(default_factory=QuotaConfig)
    gangs: GangSettings = field(default_factory=GangSettings)
    pod_groups: tuple[PodGroup, ...] = ()


def load_config(path: str | Path, base: GatesConfig | None = None) -> GatesConfig:
    """The settings in FILE, on top of `base` (e.g. what the cluster file said)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return base or GatesConfig()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of settings")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting '{unknown[0]}' (known: {', '.join(KEYS)})")
    try:
        return parse_config(data, base)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_config(data: Mapping[str, Any], base: GatesConfig | None = None) -> GatesConfig:
    """The settings in `data` (other keys are ignored) on top of `base`."""
    base = base or GatesConfig()
    quotas = base.quotas
    try:
        if "quotaUnit" in data:
            try:
                quotas = replace(quotas, unit=QuotaUnit(data["quotaUnit"]))
            except ValueError:
                raise ConfigError(f"quotaUnit: {data['quotaUnit']!r} is not gpu or a100-equivalent") from None
        if "teamSource" in data:
            try:
                quotas = replace(quotas, team_source=TeamSource(data["teamSource"]))
            except ValueError:
                raise ConfigError(f"teamSource: {data['teamSource']!r} is not pod or namespace") from None
        if "modelWeights" in data:
            quotas = replace(quotas, model_weights=_model_weights(data["modelWeights"]))
        if "defaultModelWeight" in data:
            quotas = replace(quotas, default_weight=_number(data["defaultModelWeight"], "defaultModelWeight"))
        if "teams" in data:
            teams = {t.name: t for t in quotas.teams}
            teams.update((t.name, t) for t in _teams(data["teams"]))
            quotas = replace(quotas, teams=tuple(teams.values()))
    except QuotaConfigError as e:
        raise ConfigError(str(e)) from None
    topology = base.gangs.topology
    if "rackLabel" in data:
        topology = replace(topology, rack_label=_string(data["rackLabel"], "rackLabel", empty=True))
    if "zoneLabel" in data:
        topology = replace(topology, zone_label=_string(data["zoneLabel"], "zoneLabel", empty=True))
    gangs = replace(base.gangs, topology=topology)
    if "gangs" in data:
        section = data["gangs"] or {}
        if not isinstance(section, Mapping) or set(section) - {"defaultTimeoutSeconds"}:
            raise ConfigError("gangs: expected {defaultTimeoutSeconds: N}")
        if "defaultTimeoutSeconds" in section:
            gangs = replace(gangs, default_timeout_s=_positive(section["defaultTimeoutSeconds"],
                                                               "gangs.defaultTimeoutSeconds"))
    pod_groups = base.pod_groups
    if "podGroups" in data:
        pod_groups = _pod_groups(data["podGroups"])
    return GatesConfig(quotas, gangs, pod_groups)


def _teams(value: Any) -> list[Team]:
    if not isinstance(value, list):
        raise ConfigError("teams: expected a list of {name, guaranteed, max, weight}")
    teams = []
    for i, entry in enumerate(value):
        where = f"teams[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping")
        unknown = sorted(set(entry) - {"name", "guaranteed", "max", "weight"})
        if unknown:
            raise ConfigError(f"{where}: unknown field '{unknown[0]}' (name, guaranteed, max, weight)")
        name = _string(entry.get("name"), f"{where}.name")
        where = f"teams[{i}] ({name})"
        guaranteed = parse_units(entry.get("guaranteed", 0), f"{where}.guaranteed")
        limit = None if entry.get("max") is None else parse_units(entry["max"], f"{where}.max")
        weight = _number(entry.get("weight", 1), f"{where}.weight")
        try:
            teams.append(Team(name, guaranteed, limit, weight))
        except QuotaConfigError as e:
            raise ConfigError(f"{where}: {str(e).removeprefix(f'team {name}: ')}") from None
    names = [t.name for t in teams]
    if len(set(names)) != len(names):
        raise ConfigError(f"teams: {sorted(n for n in names if names.count(n) > 1)[0]} is listed twice")
    return teams


def _model_weights(value: Any) -> tuple[ModelWeight, ...]:
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list) and all(isinstance(e, Mapping) for e in value):
        items = [(e.get("model"), e.get("weight")) for e in value]
    else:
        raise ConfigError("modelWeights: expected a mapping of model pattern to weight")
    return tuple(ModelWeight(_string(model, "modelWeights"), _number(weight, f"modelWeights[{model}]"))
                 for model, weight in items)


def _pod_groups(value: Any) -> tuple[PodGroup, ...]:
    if not isinstance(value, list):
        raise ConfigError("podGroups: expected a list of {namespace, name, minMember}")
    out = []
    for i, entry in enumerate(value):
        where = f"podGroups[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping")
        out.append(PodGroup(_string(entry.get("namespace", "default"), f"{where}.namespace"),
                            _string(entry.get("name"), f"{where}.name"),
                            _positive(entry.get("minMember"), f"{where}.minMember")))
    return tuple(out)


def _string(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def _positive(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
    return value
