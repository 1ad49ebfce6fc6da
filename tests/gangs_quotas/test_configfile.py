"""`--config FILE` and the cluster file's teams/podGroups sections: validated once, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.clusterfile import load_cluster
from scheduler.configfile import ConfigError, load_config, parse_config
from scheduler.core.quotas import QuotaUnit

ROOT = Path(__file__).resolve().parents[2]
TEAMS = ROOT / "examples" / "clusters" / "teams.yaml"
A100_EQ = ROOT / "examples" / "config" / "a100-equivalent.yaml"


def test_the_examples_load():
    spec = load_cluster(TEAMS)
    config = parse_config(spec.sections)
    assert [(t.name, t.guaranteed_milli, t.max_milli, t.weight) for t in config.quotas.teams] == [
        ("vision", 16000, 48000, 2.0), ("nlp", 32000, 64000, 1.0)]
    assert config.gangs.topology.rack_label == "example.com/rack"
    assert [(g.namespace, g.name, g.min_member) for g in config.pod_groups] == [("ml", "pytorchjob-bert", 4)]
    a100 = load_config(A100_EQ)
    assert a100.quotas.unit is QuotaUnit.A100_EQUIVALENT
    assert [a100.quotas.weight_of(m) for m in ("NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "NVIDIA-A10",
                                                "Tesla-T4", "NVIDIA-L4")] == [2.0, 1.0, 0.5, 0.25, 1.0]


def test_config_layers_on_the_cluster_files_settings_team_by_team():
    base = parse_config({"teams": [{"name": "a", "guaranteed": 1}, {"name": "b", "guaranteed": 2}],
                         "rackLabel": "rack"})
    layered = parse_config({"teams": [{"name": "b", "guaranteed": 5}]}, base)
    assert [(t.name, t.guaranteed_milli) for t in layered.quotas.teams] == [("a", 1000), ("b", 5000)]
    assert layered.gangs.topology.rack_label == "rack"


@pytest.mark.parametrize(("data", "message"), [
    ({"teams": [{"name": "a", "guaranteed": 8, "max": 4}]}, "teams[0] (a): 'max' (4) is below 'guaranteed' (8)"),
    ({"teams": [{"name": "a", "max": "12.0005"}]}, "teams[0] (a).max: '12.0005' is finer than a thousandth of a unit"),
    ({"teams": [{"name": "a", "gaurantee": 1}]}, "teams[0]: unknown field 'gaurantee' (name, guaranteed, max, weight)"),
    ({"teams": [{"name": "a"}, {"name": "a"}]}, "teams: a is listed twice"),
    ({"teams": [{"guaranteed": 1}]}, "teams[0].name: expected a non-empty string, got None"),
    ({"quotaUnit": "cards"}, "quotaUnit: 'cards' is not gpu or a100-equivalent"),
    ({"modelWeights": {"H100*": 0}}, "modelWeights[H100*]: expected a positive number, got 0"),
    ({"modelWeights": {"[": 1}}, "modelWeights: malformed GPU model glob"),
    ({"gangs": {"defaultTimeoutSeconds": 0}}, "gangs.defaultTimeoutSeconds: expected a positive integer, got 0"),
    ({"podGroups": [{"name": "pg", "minMember": "4"}]}, "podGroups[0].minMember: expected a positive integer, got '4'"),
], ids=["max below guarantee", "too precise", "typo", "twice", "no name", "unit", "zero weight", "bad glob",
        "timeout", "minMember"])
def test_mistakes_are_one_line_naming_the_field(data, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_an_unknown_setting_in_the_config_file_is_named(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("teams: []\nrackLable: rack\n")
    with pytest.raises(ConfigError, match=r"config.yaml: unknown setting 'rackLable'"):
        load_config(path)


@pytest.mark.parametrize(("config", "fragment"), [
    ("teams: [{name: a, guaranteed: 8, max: 4}]\n", "'max' (4) is below 'guaranteed' (8)"),
    ("quotaUnit: [\n", "not valid YAML"),
], ids=["invalid team", "not YAML"])
def test_serve_refuses_a_bad_config_with_exit_code_2(tmp_path, config, fragment):
    path = tmp_path / "config.yaml"
    path.write_text(config)
    result = subprocess.run([sys.executable, "-m", "scheduler.cli", "serve", "--cluster", str(TEAMS),
                             "--config", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and str(path) in lines[0]
