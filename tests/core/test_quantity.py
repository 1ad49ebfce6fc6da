from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.core.quantity import QuantityError, parse_quantity, to_integer, to_mib, to_milli


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


# ------------------------------------------------------------------ bounds (issue 13, items 2 and 12)
# A Kubernetes quantity is at most 2^63-1 in magnitude; `1e10000000` used to cost 11 s of
# `Fraction(10) ** 10000000` on the event loop, and 5,000 digits hit int()'s 4,300-digit limit as
# an internal error. Every such text is now a `QuantityError` found before any big arithmetic.
INT64_MAX = 2**63 - 1


@pytest.mark.parametrize("text", [
    "1e10000000", "1e100000000", "-1e100000000", "1e-100000000", "1e3000000", "1E400", "1e31", "1e-31",
    "1" + "0" * 5000, "9" * 5000, "0." + "0" * 5000 + "1", "1" * 20,
    "9223372036854775808", "8Ei", "9.3E", 2**63, -(2**63) - 1, 1e300, -1e19,
], ids=lambda v: repr(v)[:30])
def test_absurd_magnitudes_are_rejected_with_a_reason(text):
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200


@pytest.mark.parametrize(("text", "value"), [
    ("9223372036854775807", INT64_MAX), ("7Ei", 7 * 2**60), ("9E", 9 * 10**18), ("1e18", 10**18),
    ("0.000000001", Fraction(1, 10**9)), ("1n", Fraction(1, 10**9)), (INT64_MAX, INT64_MAX), ("-5", -5),
], ids=str)
def test_the_largest_and_smallest_kubernetes_quantities_still_parse(text, value):
    assert parse_quantity(text) == value


def test_a_value_beyond_int64_in_the_converters_unit_is_rejected():
    # 2^63-1 is the limit in the smallest unit used: 9.3e15 CPUs is 9.3e18 millicores.
    assert to_milli("9223372036854775") == 9223372036854775000
    with pytest.raises(QuantityError, match="millicores"):
        to_milli("9223372036854776")


@pytest.mark.parametrize("text", ["١٢", "１", "4\u00a0k", "4k\n5"], ids=ascii)
def test_only_ascii_digits_and_suffixes(text):
    # Python's \d and int() accept any Unicode digit; the API server accepts only ASCII.
    with pytest.raises(QuantityError):
        parse_quantity(text)


_MANTISSAS = st.builds(
    lambda whole, frac: whole + ("." + frac if frac is not None else ""),
    st.text("0123456789", min_size=1, max_size=400), st.none() | st.text("0123456789", max_size=400))
_QUANTITY_TEXT = st.builds(
    lambda sign, mantissa, tail: sign + mantissa + tail,
    st.sampled_from(["", "+", "-"]), _MANTISSAS,
    st.one_of(st.sampled_from(["", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u"]),
              st.integers(-(10**12), 10**12).map(lambda e: f"e{e}")))


@settings(max_examples=200, deadline=None)
@given(text=_QUANTITY_TEXT)
def test_any_quantity_text_parses_to_int64_or_is_rejected(text):
    try:
        value = parse_quantity(text)
    except QuantityError as e:
        assert "\n" not in str(e) and len(str(e)) < 200
        return
    assert abs(value) <= INT64_MAX


@settings(max_examples=200, deadline=None)
@given(number=st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True)))
def test_any_yaml_number_parses_to_int64_or_is_rejected(number):
    try:
        value = parse_quantity(number)
    except QuantityError:
        return
    assert abs(value) <= INT64_MAX
