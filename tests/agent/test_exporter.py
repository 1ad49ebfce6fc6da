"""The Prometheus endpoint, scraped over real HTTP and parsed as Prometheus would."""

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler.agent.exporter import AgentMetrics, serve
from scheduler.agent.health import Condition, GpuHealth
from scheduler.agent.reconcile import PHANTOM, UNACCOUNTED, Finding, Reconciliation
from tests.agent.builders import fake, gpu, uuid_of

GIB = 1024**3


@pytest.fixture
def scrape():
    servers = []

    def _scrape(metrics: AgentMetrics) -> dict[tuple[str, frozenset], float]:
        if not servers:
            servers.append(serve(metrics, port=0, addr="127.0.0.1"))
        url = f"http://127.0.0.1:{servers[0].server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    yield _scrape
    for server in servers:
        server.shutdown()
        server.server_close()


def labels(index, **extra):
    return frozenset({"node": "gpu-1", "gpu": str(index), "uuid": uuid_of(index),
                      "model": "NVIDIA-A100-SXM4-80GB", **extra}.items())


def test_gpu_metrics(scrape):
    source = fake(gpu(0, telemetry={"memoryUsedMiB": 2048, "utilizationPct": 75, "temperatureC": 61, "powerW": 312.5}),
                  gpu(1))
    metrics = AgentMetrics("gpu-1")
    sick = GpuHealth((Condition("xid-79", "XID 79 (GPU fell off the bus)"),))
    metrics.observe(source.read(), {uuid_of(1): sick})
    metrics.count_xid(uuid_of(1), 79)
    metrics.count_xid(uuid_of(1), 79)
    metrics.count_xid(uuid_of(1), 13)
    got = scrape(metrics)
    assert got[("gpusched_node_gpu_memory_used_bytes", labels(0))] == 2 * 1024 * 1024 * 1024
    assert got[("gpusched_node_gpu_memory_total_bytes", labels(0))] == 80 * GIB
    assert got[("gpusched_node_gpu_utilization_ratio", labels(0))] == 0.75
    assert got[("gpusched_node_gpu_temperature_celsius", labels(0))] == 61
    assert got[("gpusched_node_gpu_power_watts", labels(0))] == 312.5
    assert got[("gpusched_node_gpu_healthy", labels(0))] == 1
    assert got[("gpusched_node_gpu_healthy", labels(1))] == 0
    assert got[("gpusched_node_gpu_xid_errors_total", labels(1, xid="79"))] == 2
    assert got[("gpusched_node_gpu_xid_errors_total", labels(1, xid="13"))] == 1
    assert got[("gpusched_node_agent_info", frozenset({"node": "gpu-1", "driver_version": "550.54.15",
                                                       "cuda_version": "12.4"}.items()))] == 1


def test_agent_metrics_start_at_zero_and_count(scrape):
    metrics = AgentMetrics("gpu-1")
    node = frozenset({"node": "gpu-1"}.items())
    got = scrape(metrics)
    for reason in ("nvml", "nvml-unavailable", "kube-api", "pod-resources"):
        assert got[("gpusched_node_agent_errors_total", frozenset({"node": "gpu-1", "reason": reason}.items()))] == 0
    assert got[("gpusched_node_agent_phantom_allocations", node)] == 0
    metrics.count_error("nvml")
    metrics.count_corrections(2)
    metrics.mark_published(1714564800.0)
    metrics.observe(fake(gpu(0)).read(), {})
    metrics.observe_reconciliation(Reconciliation(findings=(
        Finding(PHANTOM, "p/a", "x"), Finding(PHANTOM, "p/b", "y"),
        Finding(UNACCOUNTED, "u/0", "z", gpu=uuid_of(0), count=3))))
    got = scrape(metrics)
    assert got[("gpusched_node_agent_errors_total", frozenset({"node": "gpu-1", "reason": "nvml"}.items()))] == 1
    assert got[("gpusched_node_agent_record_corrections_total", node)] == 2
    assert got[("gpusched_node_agent_phantom_allocations", node)] == 2
    assert got[("gpusched_node_agent_last_publish_timestamp_seconds", node)] == 1714564800.0
    assert got[("gpusched_node_gpu_unaccounted_processes", labels(0))] == 3


def test_a_value_nvml_does_not_give_is_left_out(scrape):
    source = fake(gpu(0, lost=True))
    metrics = AgentMetrics("gpu-1")
    metrics.observe(source.read(), {})
    got = scrape(metrics)
    assert ("gpusched_node_gpu_temperature_celsius", labels(0)) not in got
    assert ("gpusched_node_gpu_memory_total_bytes", labels(0)) in got


def test_a_gpu_that_disappears_takes_its_series_along(scrape):
    metrics = AgentMetrics("gpu-1")
    metrics.observe(fake(gpu(0), gpu(1)).read(), {})
    assert ("gpusched_node_gpu_healthy", labels(1)) in scrape(metrics)
    metrics.observe(fake(gpu(0)).read(), {})
    assert ("gpusched_node_gpu_healthy", labels(1)) not in scrape(metrics)
