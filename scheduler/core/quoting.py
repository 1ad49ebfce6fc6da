"""User text inside a one-line reason: quoted, and cut short.

A reason is repeated for every node of a filter answer and lands in events and logs, so text a
pod carries (an annotation may hold 256 KiB) is never copied into one whole: its repr (which
escapes newlines and control characters, keeping the reason one line) is cut after `limit`
characters and says how long it was.
"""

from __future__ import annotations

QUOTE_LIMIT = 40


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """repr(value), at most about `limit` characters: `'xxxx... (100000 characters)'`."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit number"  # str() of a huge int is itself slow, or refused
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit - 8]!r}... ({len(value)} characters)"
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit - 8]}... ({len(shown)} characters)"
