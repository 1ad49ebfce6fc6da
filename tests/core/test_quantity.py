import pytest

from scheduler.core.quantity import QuantityError, to_integer, to_mib, to_milli


@pytest.mark.parametrize(("text", "milli"), [
    ("4", 4000), ("500m", 500), ("0.5", 500), ("95500m", 95500), (4, 4000), ("1e3", 1_000_000), ("100u", 1),
], ids=str)
def test_cpu_quantities_in_milli(text, milli):
    assert to_milli(text) == milli


@pytest.mark.parametrize(("text", "mib"), [
    ("16Gi", 16384), ("1Ki", 1), ("1048576", 1), ("1", 1), ("1045026168Ki", 1020534), ("2G", 1908),
], ids=str)
def test_memory_quantities_in_mib_round_up(text, mib):
    # 2G = 2e9 bytes = 1907.35 MiB -> 1908; one byte still needs a whole MiB.
    assert to_mib(text) == mib


@pytest.mark.parametrize("text", ["0.5", "500m", "1.5", "1e-1"], ids=str)
def test_extended_resources_must_be_whole(text):
    with pytest.raises(QuantityError, match="whole number"):
        to_integer(text)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "4 cores", "--1", None, True, float("nan"), [1]], ids=repr)
def test_garbage_is_rejected_with_the_text(text):
    with pytest.raises(QuantityError):
        to_milli(text)
