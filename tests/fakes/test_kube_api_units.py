"""The fake's pure parts on their own: patch application and selector parsing, against the RFCs' and
apimachinery's examples (the HTTP tests only sample them)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.kubeapi import errors, patching, selectors


@pytest.mark.parametrize(("target", "patch", "result"), [
    # RFC 7386, appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch(target: Any, patch: Any, result: Any) -> None:
    assert patching.merge_patch(target, patch) == result


@pytest.mark.parametrize(("target", "operations", "result"), [
    # RFC 6902, appendix A
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"foo": "bar", "baz": "qux"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": "x"}], {"foo": ["bar", "x"]}),
    ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ({"a/b": 1, "m~n": 2}, [{"op": "test", "path": "/a~1b", "value": 1}, {"op": "copy", "from": "/m~0n",
                                                                         "path": "/c"}],
     {"a/b": 1, "m~n": 2, "c": 2}),
])
def test_json_patch(target: Any, operations: Any, result: Any) -> None:
    assert patching.json_patch(target, operations) == result


@pytest.mark.parametrize(("operations", "code"), [
    ([{"op": "test", "path": "/foo", "value": "other"}], 422),
    ([{"op": "remove", "path": "/missing"}], 422),
    ([{"op": "replace", "path": "/missing", "value": 1}], 422),
    ([{"op": "frobnicate", "path": "/foo"}], 400),
    ({"op": "add"}, 400),
], ids=["failed-test", "remove-missing", "replace-missing", "unknown-op", "not-a-list"])
def test_json_patch_refusals(operations: Any, code: int) -> None:
    with pytest.raises(errors.ApiError) as refused:
        patching.json_patch({"foo": "bar"}, operations)
    assert refused.value.code == code


def test_strategic_merge_patch_merges_keyed_lists_and_sets() -> None:
    pod = {"metadata": {"finalizers": ["a"]},
           "spec": {"containers": [{"name": "main", "image": "x:1"}, {"name": "side", "image": "y:1"}]}}
    patch = {"metadata": {"finalizers": ["b"]},
             "spec": {"containers": [{"name": "main", "image": "x:2"}, {"name": "side", "$patch": "delete"},
                                     {"name": "new", "image": "z:1"}]}}
    assert patching.strategic_merge_patch(pod, patch) == {
        "metadata": {"finalizers": ["a", "b"]},
        "spec": {"containers": [{"name": "main", "image": "x:2"}, {"name": "new", "image": "z:1"}]}}
    removed = patching.strategic_merge_patch(pod, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert removed["metadata"]["finalizers"] == []


def test_strategic_merge_patch_replaces_lists_without_a_merge_key() -> None:
    pod = {"spec": {"tolerations": [{"key": "a"}]}}
    assert patching.strategic_merge_patch(pod, {"spec": {"tolerations": [{"key": "b"}]}}) == {
        "spec": {"tolerations": [{"key": "b"}]}}


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("a=1", {"a": "1"}, True), ("a=1", {}, False), ("a!=1", {}, True), ("a notin (1,2)", {"a": "3"}, True),
    ("a in (1, 2)", {"a": "2"}, True), ("a in (1,2)", {}, False), ("a,!b", {"a": ""}, True),
    ("a,!b", {"a": "", "b": ""}, False), (" a = 1 , b ", {"a": "1", "b": "x"}, True),
    ("example.com/a=x", {"example.com/a": "x"}, True),
])
def test_label_selector_matching(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert selectors.parse_label_selector(selector)(labels) is matches


@pytest.mark.parametrize("selector", ["a in 1", "a=b c", "-a=1", "a=bad value", "a==b==c"])
def test_label_selector_syntax_errors_are_400(selector: str) -> None:
    with pytest.raises(errors.ApiError) as refused:
        selectors.parse_label_selector(selector)
    assert refused.value.code == 400


def test_match_expressions_of_a_label_selector_object() -> None:
    selector = {"matchLabels": {"app": "x"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["gpu"]}, {"key": "old", "operator": "DoesNotExist"}]}
    assert selectors.match_label_selector_object(selector, {"app": "x", "tier": "gpu"})
    assert not selectors.match_label_selector_object(selector, {"app": "x", "tier": "gpu", "old": "1"})
