"""GPU model selection from the `gpusched.io/gpu-model` annotation.

Syntax: comma-separated glob terms, case-insensitive; a term starting with `!` excludes.
`"A100*,H100*"` allows A100s and H100s, `"!T4"` allows everything but T4s. A term matches a
model name as GPU feature discovery writes it (`NVIDIA-A100-SXM4-80GB`) and also with the vendor
prefix dropped (`A100-SXM4-80GB`), so users can write the short names they know.

Bounded, because an annotation may hold 256 KiB and every new selector is compiled on the
extender's event loop (10,000 terms took seconds): at most MAX_TERMS terms, each glob at most
MAX_GLOB_LENGTH characters (a model name is a label value, 63 characters at most), the whole text
at most MAX_SELECTOR_LENGTH, checked before it is split. The largest selector allowed compiles in
about 12 ms (32 globs of 63 characters, half of them `*`); a realistic one in well under 1 ms.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cached_property

from scheduler.core.quoting import quoted

_TERM = re.compile(r"[A-Za-z0-9*?][A-Za-z0-9_.*?\- ]*", re.ASCII)
MAX_TERMS = 32
MAX_GLOB_LENGTH = 63
MAX_SELECTOR_LENGTH = 2048
_VENDOR_PREFIXES = ("nvidia-tesla-", "nvidia-", "tesla-")


class SelectorError(ValueError):
    """A model selector that does not parse."""


@dataclass(frozen=True)
class ModelSelector:
    """Allowed and excluded model globs. The empty selector allows every model."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ModelSelector:
        allow: list[str] = []
        deny: list[str] = []
        if not text.strip():
            raise SelectorError("empty GPU model list")
        if len(text) > MAX_SELECTOR_LENGTH:
            raise SelectorError(f"GPU model list is longer than {MAX_SELECTOR_LENGTH} characters ({len(text)})")
        raws = text.split(",")
        if len(raws) > MAX_TERMS:
            raise SelectorError(f"GPU model list has more than {MAX_TERMS} terms ({len(raws)})")
        for raw in raws:
            term = raw.strip()
            negated = term.startswith("!")
            glob = term[1:].strip() if negated else term
            if not glob:
                raise SelectorError(f"empty term in GPU model list {quoted(text)}")
            if len(glob) > MAX_GLOB_LENGTH:
                raise SelectorError(f"GPU model glob {quoted(glob)} is longer than {MAX_GLOB_LENGTH} characters")
            if not _TERM.fullmatch(glob):
                raise SelectorError(
                    f"malformed GPU model glob {quoted(glob)} (letters, digits, '-', '_', '.', '*', '?')")
            (deny if negated else allow).append(glob.lower())
        return cls(tuple(sorted(set(allow))), tuple(sorted(set(deny))))

    @classmethod
    def any_of(cls, models: list[str] | tuple[str, ...]) -> ModelSelector:
        """Exact model names (the trace's `gpu_spec`), matched case-insensitively."""
        return cls(tuple(sorted({m.lower() for m in models if m})), ())

    @property
    def is_any(self) -> bool:
        return not self.allow and not self.deny

    @cached_property
    def _allow_re(self) -> re.Pattern[str] | None:
        return _compile(self.allow)

    @cached_property
    def _deny_re(self) -> re.Pattern[str] | None:
        return _compile(self.deny)

    def matches(self, model: str) -> bool:
        names = _names_of(model)
        if self._deny_re is not None and any(self._deny_re.match(n) for n in names):
            return False
        return self._allow_re is None or any(self._allow_re.match(n) for n in names)

    def __str__(self) -> str:
        return ",".join([*self.allow, *("!" + d for d in self.deny)]) or "*"


def _compile(globs: tuple[str, ...]) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs), re.IGNORECASE)


def _names_of(model: str) -> tuple[str, ...]:
    lowered = model.lower()
    for prefix in _VENDOR_PREFIXES:
        if lowered.startswith(prefix):
            return lowered, lowered[len(prefix):]
    return (lowered,)
