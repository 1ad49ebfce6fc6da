import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.selector import (
    MAX_GLOB_LENGTH,
    MAX_SELECTOR_LENGTH,
    MAX_TERMS,
    ModelSelector,
    SelectorError,
)


@pytest.mark.parametrize(("selector", "model", "allowed"), [
    ("A100*", "NVIDIA-A100-SXM4-80GB", True),          # the vendor prefix may be left out
    ("a100*", "NVIDIA-A100-SXM4-80GB", True),          # case-insensitive
    ("NVIDIA-A100*", "NVIDIA-A100-SXM4-80GB", True),
    ("A100*,H100*", "NVIDIA-H100-80GB-HBM3", True),
    ("A100*,H100*", "Tesla-T4", False),
    ("!T4", "Tesla-T4", False),
    ("!T4", "NVIDIA-A10", True),
    ("T4", "T4", True),                                 # trace model names (openb: T4, G2, V100M16)
    ("V100*", "V100M32", True),
    ("A10", "NVIDIA-A100-SXM4-80GB", False),            # whole-name match: A10 is not A100
    ("*,!A100-PCIE*", "NVIDIA-A100-PCIE-40GB", False),  # deny wins over allow
    ("A10?", "NVIDIA-A100-SXM4-80GB", False),
], ids=lambda v: str(v))
def test_matching(selector, model, allowed):
    assert ModelSelector.parse(selector).matches(model) is allowed


def test_empty_selector_allows_everything():
    assert ModelSelector().matches("anything") and ModelSelector().is_any


@pytest.mark.parametrize("text", ["", ",", "A100,", "!", "A100;H100", "A100[", "A100 | H100", "(A100)"])
def test_malformed(text):
    with pytest.raises(SelectorError):
        ModelSelector.parse(text)


def test_equal_selectors_are_equal_whatever_the_order():
    assert ModelSelector.parse("h100*, A100*") == ModelSelector.parse("a100*,H100*")


# ------------------------------------------------------------------ bounds (issue 13, item 3)
# 10,000 glob terms (214 KiB, under the API's 256 KiB annotation limit) cost seconds of regex
# compilation per new selector on the event loop. A selector is at most MAX_TERMS terms of at most
# MAX_GLOB_LENGTH characters (a GPU model name is a label value: 63 characters at most).
def terms(count: int, length: int = 8) -> str:
    return ",".join(f"{i:0{length}d}"[-length:] for i in range(count))


@pytest.mark.parametrize(("text", "reason"), [
    (terms(MAX_TERMS + 1), f"more than {MAX_TERMS} terms"),
    (terms(10_000, 20), f"longer than {MAX_SELECTOR_LENGTH} characters"),
    ("A100*," + "a" * (MAX_GLOB_LENGTH + 1), f"longer than {MAX_GLOB_LENGTH} characters"),
    ("!" + "*a" * 40, f"longer than {MAX_GLOB_LENGTH} characters"),
    ("A1\n00", "malformed GPU model glob"),
    ("A100[" + "x" * 1000, "GPU model glob 'A100["),
], ids=["too-many-terms", "214-KiB", "long-glob", "long-negated-glob", "newline", "long-garbage"])
def test_oversized_selectors_are_refused_with_a_short_reason(text, reason):
    with pytest.raises(SelectorError) as caught:
        ModelSelector.parse(text)
    message = str(caught.value)
    assert reason in message and "\n" not in message and len(message) < 200


def test_the_largest_selector_allowed_still_works():
    largest = ",".join(f"{i:02d}" + "*a" * ((MAX_GLOB_LENGTH - 2) // 2) for i in range(MAX_TERMS))
    assert len(ModelSelector.parse(largest).allow) == MAX_TERMS
    with pytest.raises(SelectorError):
        ModelSelector.parse(largest + ",*A100*")  # one term too many
    with_a100 = ",".join([*largest.split(",")[:-1], "*A100*"])
    assert ModelSelector.parse(with_a100).matches("NVIDIA-A100-SXM4-80GB")


_GLOB = st.text("Aa019-_.*? !", min_size=0, max_size=100)


@settings(max_examples=150, deadline=None)
@given(st.lists(_GLOB, max_size=80).map(",".join))
def test_any_selector_text_parses_within_its_bounds_or_is_refused(text):
    try:
        selector = ModelSelector.parse(text)
    except SelectorError as e:
        assert "\n" not in str(e) and len(str(e)) < 200
        return
    globs = [*selector.allow, *selector.deny]
    assert len(globs) <= MAX_TERMS and all(len(g) <= MAX_GLOB_LENGTH for g in globs)
    selector.matches("NVIDIA-A100-SXM4-80GB")
