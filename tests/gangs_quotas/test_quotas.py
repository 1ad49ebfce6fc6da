"""Team quotas: configuration, units, team resolution, charges, limits and fair shares."""

from __future__ import annotations

import pytest

from scheduler.core.engine import Engine
from scheduler.core.quotas import (
    ModelWeight,
    QuotaBook,
    QuotaConfig,
    QuotaConfigError,
    QuotaUnit,
    Team,
    format_units,
    parse_units,
    team_from_resource_quotas,
)
from tests.gangs_quotas.builders import A100, H100, gpu_node, teams, worker


@pytest.mark.parametrize(("value", "milli"), [(8, 8000), ("12.5", 12500), ("2500m", 2500), (0.25, 250), ("0", 0)])
def test_amounts_have_milli_precision(value, milli):
    assert parse_units(value, "teams[0].max") == milli


@pytest.mark.parametrize(("value", "message"), [
    ("0.0005", "teams[0].max: '0.0005' is finer than a thousandth of a unit"),
    ("-1", "teams[0].max: cannot be negative, got '-1'"),
    ("lots", "teams[0].max: 'lots' is not a number of units"),
])
def test_bad_amounts_name_the_field(value, message):
    with pytest.raises(QuotaConfigError) as caught:
        parse_units(value, "teams[0].max")
    assert str(caught.value) == message


@pytest.mark.parametrize(("milli", "text"), [(12500, "12.5"), (250, "0.25"), (16000, "16"), (None, "unlimited")])
def test_units_print_as_people_write_them(milli, text):
    assert format_units(milli) == text


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Team("a", 8000, 4000), "team a: 'max' (4) is below 'guaranteed' (8)"),
    (lambda: Team("a", weight=0), "team a: 'weight' must be a positive number"),
    (lambda: QuotaConfig((Team("a"), Team("a"))), "teams: a is listed twice"),
    (lambda: ModelWeight("H100*", -1), "modelWeights[H100*]: weight must be a positive number"),
], ids=["max below guarantee", "zero weight", "duplicate", "negative model weight"])
def test_invalid_teams_are_refused_once_with_a_reason(make, message):
    with pytest.raises(QuotaConfigError) as caught:
        make()
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(("hards", "expected"), [
    ([{"requests.nvidia.com/gpu": "8"}], (8000, 8000)),
    ([{"requests.nvidia.com/gpu": "4", "requests.gpusched.io/gpu-milli": "1500"}], (5500, 5500)),
    ([{"requests.nvidia.com/gpu": "8"}, {"requests.nvidia.com/gpu": "6"}], (6000, 6000)),
    ([{"requests.cpu": "64"}], None),
], ids=["whole GPUs", "GPUs plus shares", "smallest quota wins", "no GPU quota"])
def test_a_namespace_resource_quota_makes_a_team(hards, expected):
    team = team_from_resource_quotas("vision", hards)
    if expected is None:
        assert team is None
    else:
        assert (team.name, team.guaranteed_milli, team.max_milli, team.source) == ("vision", *expected, "resourcequota")


def test_a_pods_team_is_its_label_else_its_namespaces_label_else_its_namespace():
    book = QuotaBook()
    book.set_namespace_labels("research", {"gpusched.io/team": "vision"})
    assert book.team_of(worker("p", namespace="ml").team("nlp").request()) == "nlp"
    assert book.team_of(worker("p", namespace="research").request()) == "vision"
    assert book.team_of(worker("p", namespace="ml").request()) == "ml"


def test_configured_teams_win_over_resource_quotas_and_unknown_teams_guarantee_nothing():
    book = QuotaBook(QuotaConfig((Team("vision", 16000, 32000),)))
    book.set_derived_team(Team("vision", 4000, 4000, source="resourcequota"))
    book.set_derived_team(Team("nlp", 4000, 4000, source="resourcequota"))
    assert (book.team("vision").guaranteed_milli, book.team("nlp").source, book.team("ml").source) == (
        16000, "resourcequota", "default")
    assert book.team("ml").max_milli is None and book.team("ml").guaranteed_milli == 0


def test_without_any_team_nothing_is_limited_or_borrowed():
    engine = Engine([gpu_node("n0")])
    pod = worker("p", gpus=8).request()
    engine.filter(pod, ["n0"])
    assert engine.bind(pod.uid, "ml", "p", "n0").borrowed is False
    assert engine.pod_gate(worker("q", gpus=8).request()) == ""


def test_fair_share_splits_what_nobody_is_guaranteed_by_weight():
    book = QuotaBook(teams(vision=(8, None, 2.0), nlp=(4, None, 1.0)))
    standings = book.standings(capacity_milli=32000)
    # spare = 32 - (8 + 4) = 20 GPUs: vision 8 + 2/3 × 20, nlp 4 + 1/3 × 20
    assert standings["vision"].fair_milli == pytest.approx(8000 + 20000 * 2 / 3)
    assert standings["nlp"].fair_milli == pytest.approx(4000 + 20000 / 3)


def test_a100_equivalents_charge_by_model_and_limit_per_node():
    config = QuotaConfig((Team("ml", 4000, 6000),), QuotaUnit.A100_EQUIVALENT,
                         (ModelWeight("H100*", 2.0), ModelWeight("A100*", 1.0)))
    engine = Engine([gpu_node("a100", 8, model=A100), gpu_node("h100", 8, model=H100)], quotas=config)
    pod = worker("p", gpus=4).team("ml").request()
    answer = engine.filter(pod, ["a100", "h100"])
    # 4 H100s = 8 A100-equivalents > max 6; 4 A100s = 4.
    assert answer.passed == ["a100"]
    assert answer.unresolvable == {"h100": "team ml: 0 A100-equivalents in use + 8 asked would exceed its max of 6"}
    engine.bind(pod.uid, "ml", "p", "a100")
    assert engine.gates.quotas.used("ml") == 4000
    small = worker("q", gpus=1).team("ml").request()
    engine.filter(small, ["a100", "h100"])
    alloc = engine.bind(small.uid, "ml", "q", "h100")
    assert (engine.gates.quotas.used("ml"), alloc.borrowed) == (6000, True)  # 4 + 2: above the guarantee of 4
