"""Kubernetes resource quantities ("500m", "16Gi", "4") as exact integers.

Only the forms the API server itself emits are accepted; anything else raises
`QuantityError` with a message that names the offending text.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}
_PATTERN = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")


class QuantityError(ValueError):
    """A quantity that is not valid Kubernetes quantity syntax."""


def parse_quantity(text: object) -> Fraction:
    """The exact value of a quantity string (or an int, as YAML gives for `cpu: 4`)."""
    if isinstance(text, bool):
        raise QuantityError(f"not a quantity: {text!r}")
    if isinstance(text, int):
        return Fraction(text)
    if isinstance(text, float):
        if text != text or text in (float("inf"), float("-inf")):
            raise QuantityError(f"not a quantity: {text!r}")
        return Fraction(str(text))
    if not isinstance(text, str):
        raise QuantityError(f"not a quantity: {text!r}")
    match = _PATTERN.match(text.strip())
    if not match:
        raise QuantityError(f"not a quantity: {text!r}")
    sign, number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        value *= Fraction(10) ** int(exponent[1:])
    elif suffix in _BINARY:
        value *= _BINARY[suffix]
    else:
        value *= _DECIMAL[suffix or ""]
    return -value if sign == "-" else value


def to_milli(text: object) -> int:
    """CPU-style quantity in thousandths, rounded up as the kubelet does ("100m" -> 100, "1" -> 1000)."""
    value = parse_quantity(text) * 1000
    return -((-value.numerator) // value.denominator)


def to_mib(text: object) -> int:
    """Memory quantity in MiB, rounded up ("16Gi" -> 16384, "1Ki" -> 1)."""
    value = parse_quantity(text) / 2**20
    return -((-value.numerator) // value.denominator)


def to_integer(text: object) -> int:
    """An integer quantity (extended resources). Raises on fractions such as "0.5" or "500m"."""
    value = parse_quantity(text)
    if value.denominator != 1:
        raise QuantityError(f"{text!r} is not a whole number")
    return int(value)
