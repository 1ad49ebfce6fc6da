"""Who picks a pod's team (issue 13 item 11): its own label, or only its namespace.

With `teamSource: pod` (the default, DESIGN §3) a pod's `gpusched.io/team` label wins, so any pod
author can charge any team. `teamSource: namespace` takes the team from the namespace only (its
`gpusched.io/team` label, set by whoever may edit namespaces, else its name). Team labels on
metrics are bounded either way: declared teams by name, every other team as `other`.
"""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from scheduler.configfile import ConfigError, parse_config
from scheduler.core.allocation import Allocation
from scheduler.core.engine import Engine
from scheduler.core.quotas import QuotaBook, QuotaConfig, TeamSource
from scheduler.extender.service import ExtenderService
from tests.gangs_quotas.builders import gpu_node, teams, worker


def test_the_config_file_names_the_source_and_pod_is_the_default():
    assert parse_config({}).quotas.team_source is TeamSource.POD
    assert parse_config({"teamSource": "namespace"}).quotas.team_source is TeamSource.NAMESPACE
    with pytest.raises(ConfigError, match=r"^teamSource: 'label' is not pod or namespace$"):
        parse_config({"teamSource": "label"})


def test_in_namespace_mode_a_pods_label_names_no_team():
    book = QuotaBook(QuotaConfig(team_source=TeamSource.NAMESPACE))
    book.set_namespace_labels("research", {"gpusched.io/team": "vision"})
    assert book.team_of(worker("p", namespace="ml").team("vision").request()) == "ml"
    assert book.team_of(worker("p", namespace="research").team("nlp").request()) == "vision"


@pytest.mark.parametrize(("source", "charged"), [(TeamSource.POD, "vision"), (TeamSource.NAMESPACE, "sandbox")])
def test_a_bound_pod_is_charged_to_the_team_its_source_names(source, charged):
    config = teams(vision=(8, 8))
    engine = Engine([gpu_node("n0")], quotas=QuotaConfig(config.teams, config.unit, team_source=source))
    pod = worker("p", gpus=4, namespace="sandbox").team("vision").request()
    engine.filter(pod, ["n0"])
    engine.bind(pod.uid, "sandbox", "p", "n0")
    assert engine.gates.quotas.used(charged) == 4000
    # a record read back after a restart carries the pod's label as its team: the source decides again
    engine.restore(Allocation("uid-2", "sandbox", "q", "n0", gpu_uuids=("GPU-n0-7",), milli=1000, team="vision"))
    assert engine.gates.quotas.used(charged) == 5000


def test_team_labels_on_metrics_are_declared_teams_and_other():
    config = teams(vision=(8, None))
    service = ExtenderService(Engine([gpu_node(f"n{i}") for i in range(4)], quotas=config))
    for i in range(20):  # twenty made-up teams, one GPU each
        pod = worker(f"p{i}", gpus=1, namespace=f"ns{i}").team(f"made-up-{i}").request()
        service.engine.filter(pod, [f"n{i % 4}"])
        service.engine.bind(pod.uid, f"ns{i}", f"p{i}", f"n{i % 4}")
    lines = [line for line in generate_latest(service.metrics.registry).decode().splitlines()
             if line.startswith("gpusched_team_used_milli{")]
    assert sorted(lines) == ['gpusched_team_used_milli{team="other"} 20000.0',
                             'gpusched_team_used_milli{team="vision"} 0.0']
