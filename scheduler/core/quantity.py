"""Kubernetes resource quantities ("500m", "16Gi", "4") as exact integers.

Only the forms the API server itself emits are accepted; anything else raises
`QuantityError` with a message that names the offending text.

Bounded by construction, because the text comes from whoever can create a pod: a quantity is
checked for length, significant digits and exponent before any arithmetic, so parsing costs
microseconds whatever it is handed (`1e10000000` used to cost seconds of `10 ** exponent`), and
every value is at most 2^63-1 in magnitude, the API server's own limit for a quantity. The
converters apply the same limit in their own unit (`to_milli`: millicores), so every number
that leaves this module fits the int64 arrays of the books.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from scheduler.core.quoting import quoted

INT64_MAX = 2**63 - 1
"""The largest quantity the API server represents ("no quantity may represent a number greater than 2^63-1")."""
MAX_TEXT_LENGTH = 64
"""Characters in a quantity string: int64 has 19 digits, and the API server emits nothing longer than ~25."""
MAX_SIGNIFICANT_DIGITS = 19
"""Digits between the first and last non-zero digit: as many as int64 has, so 9223372036854775807 parses."""
MAX_EXPONENT = 30
"""|e| in the `1e3` form: the API server's own suffixes span 1e-9..1e18; anything past 1e±30 is no resource."""

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}
_PATTERN = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)",
                      re.ASCII)


class QuantityError(ValueError):
    """A quantity that is not valid Kubernetes quantity syntax, or not a size any resource has."""


def parse_quantity(text: object) -> Fraction:
    """The exact value of a quantity string (or an int, as YAML gives for `cpu: 4`), |value| <= 2^63-1."""
    if isinstance(text, bool):
        raise QuantityError(f"not a quantity: {text!r}")
    if isinstance(text, int):
        return _bounded(Fraction(text), text)
    if isinstance(text, float):
        if text != text or text in (float("inf"), float("-inf")):
            raise QuantityError(f"not a quantity: {text!r}")
        return _bounded(Fraction(str(text)), text)
    if type(text) is str:
        return _parse_text(text)
    if not isinstance(text, str):
        raise QuantityError(f"not a quantity: {quoted(text)}")
    return _parse_text.__wrapped__(text)


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Fraction:
    """A quantity string's value, remembered: a cluster's pods spell their requests with a few
    dozen strings ("1", "4Gi", "500m"), and the exact arithmetic was most of parsing a pod.
    A pure function of the text with an immutable answer; refusals raise again each time."""
    stripped = text.strip()
    if len(stripped) > MAX_TEXT_LENGTH:
        raise QuantityError(f"{quoted(text)} is longer than a quantity can be ({MAX_TEXT_LENGTH} characters)")
    match = _PATTERN.fullmatch(stripped)
    if not match:
        raise QuantityError(f"not a quantity: {quoted(text)}")
    sign, number, exponent, suffix = match.groups()
    whole, _, fraction = number.partition(".")
    significant = (whole + fraction).strip("0")
    if len(significant) > MAX_SIGNIFICANT_DIGITS:
        raise QuantityError(f"{quoted(text)} has more than {MAX_SIGNIFICANT_DIGITS} significant digits")
    value = Fraction(int(whole or "0")) + (Fraction(int(fraction), 10 ** len(fraction)) if fraction else 0)
    if exponent is not None:
        power = int(exponent)
        if abs(power) > MAX_EXPONENT:
            raise QuantityError(f"{quoted(text)}: exponent {power} is out of range (at most ±{MAX_EXPONENT})")
        value *= Fraction(10) ** power
    elif suffix in _BINARY:
        value *= _BINARY[suffix]
    else:
        value *= _DECIMAL[suffix or ""]
    return _bounded(-value if sign == "-" else value, text)


def to_milli(text: object) -> int:
    """CPU-style quantity in thousandths, rounded up as the kubelet does ("100m" -> 100, "1" -> 1000)."""
    value = parse_quantity(text) * 1000
    milli = -((-value.numerator) // value.denominator)
    if abs(milli) > INT64_MAX:
        raise QuantityError(f"{quoted(text)} is more than 2^63-1 millicores")
    return milli


def to_mib(text: object) -> int:
    """Memory quantity in MiB, rounded up ("16Gi" -> 16384, "1Ki" -> 1)."""
    value = parse_quantity(text) / 2**20
    return -((-value.numerator) // value.denominator)


def to_integer(text: object) -> int:
    """An integer quantity (extended resources). Raises on fractions such as "0.5" or "500m"."""
    value = parse_quantity(text)
    if value.denominator != 1:
        raise QuantityError(f"{quoted(text)} is not a whole number")
    return int(value)


def _bounded(value: Fraction, text: object) -> Fraction:
    if abs(value) > INT64_MAX:
        raise QuantityError(f"{quoted(text)} is larger than any quantity (at most 2^63-1)")
    return value

