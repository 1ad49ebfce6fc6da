import pytest

from scheduler.core.selector import ModelSelector, SelectorError


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
