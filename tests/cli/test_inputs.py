"""Inputs a user gets wrong, each answered with one line and exit code 2 before any work is done;
`--version`; and a help text on every flag of every command."""

from __future__ import annotations

import argparse

import pytest

from scheduler.cli import build_parser, main
from tests.simulator.conftest import NODE_CSV, pod_csv

NODE = "{name: a, cpuMilli: 1000, memoryMiB: 1000"


def one_line(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize(("content", "fragments"), [
    (f"nodes: [{NODE}, gpu: {{count: 8, model: A100, memoryMiB: 1}}}}]", ["nodes[0] (a)", "unknown key 'gpu'", "gpus"]),
    (f"nodes: [{NODE}, gpus: {{count: 8, modle: A100, memoryMiB: 1}}}}]", ["nodes[0] (a).gpus", "unknown key 'modle'"]),
    (f"nodes: [{NODE}}}, {NODE}}}]", ["duplicate node name 'a'", "nodes[1]"]),
    (f"nodes: [{NODE}}}]\npods: [{{namespace: x, name: y, node: a, gpuMili: 5}}]", ["pods[0]", "unknown key 'gpuMili'"]),
    ("nodes:\n- name: a\n  cpuMilli: [1\n", ["not valid YAML", "line 4"]),
], ids=["gpu-not-gpus", "gpus-typo", "duplicate-node", "pod-typo", "yaml-line"])
def test_cluster_file_mistakes_are_named(tmp_path, capsys, content, fragments):
    path = tmp_path / "cluster.yaml"
    path.write_text(content)
    assert main(["explain", "--cluster", str(path), "--pod", "{}"]) == 2
    one_line(capsys, str(path), *fragments)


def test_out_that_is_a_file_is_refused_before_the_run(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    assert main(["simulate", "compare", "--generate", "1", "--policy", "fgd,bestfit", "--out",
                 str(tmp_path / "taken"), "--quiet"]) == 2
    one_line(capsys, "--out", "not a directory")


@pytest.mark.parametrize(("args", "fragments"), [
    (["--generate", "1", "--jobs", "0"], ["--jobs", "at least 1"]),
    (["--generate", "1", "--seeds", "5-1"], ["--seeds", "5-1", "backwards"]),
    (["--protocol", "fgd", "--generate", "1"], ["--generate", "--protocol fgd"]),
], ids=["jobs-0", "reversed-seeds", "fgd-with-generate"])
def test_simulate_argument_mistakes(tmp_path, capsys, args, fragments):
    assert main(["simulate", *args, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    one_line(capsys, *fragments)


def test_a_csv_with_a_utf8_bom_is_read(tmp_path):
    nodes, pods = tmp_path / "nodes.csv", tmp_path / "openb_pod_list_bom.csv"
    nodes.write_text("\ufeff" + NODE_CSV, encoding="utf-8")
    pods.write_text("\ufeff" + pod_csv(), encoding="utf-8")
    assert main(["simulate", "--trace", str(pods), "--nodes", str(nodes), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"gpusched {version('gpusched')}"


def _parsers(parser: argparse.ArgumentParser, path: str = "gpusched"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_flag_has_help():
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, parser in _parsers(build_parser())
               for a in parser._actions if not isinstance(a, argparse._SubParsersAction) and not (a.help or "").strip()]
    assert missing == []
