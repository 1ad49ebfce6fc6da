"""CSV rows with their line numbers, and field converters whose errors name file and line."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path


class TraceError(ValueError):
    """An unreadable or invalid trace file; the message is one line naming file and line."""


def read_rows(path: str | Path, *, required: Sequence[str], header: Sequence[str] | None = None
              ) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row. `header` names the columns of a file without one."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # -sig: a spreadsheet's byte-order mark is not a column
    except OSError as e:
        raise TraceError(f"{path}: {e.strerror or e}") from None
    with handle:
        reader = csv.reader(handle)
        columns = list(header) if header is not None else _header(reader, path)
        missing = [c for c in required if c not in columns]
        if missing:
            raise TraceError(f"{path}:1: missing column(s) {', '.join(missing)} (found {', '.join(columns)})")
        try:
            for values in reader:
                line = reader.line_num
                if not values or values == [""]:
                    continue
                if len(values) != len(columns):
                    raise TraceError(f"{path}:{line}: expected {len(columns)} fields, found {len(values)}")
                yield line, dict(zip(columns, values, strict=True))
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None


def _header(reader, path: Path) -> list[str]:
    try:
        return [c.strip() for c in next(reader)]
    except StopIteration:
        raise TraceError(f"{path}:1: empty file (no header line)") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise TraceError(f"{path}:1: not valid CSV ({e})") from None


def integer(row: dict[str, str], column: str, where: str, *, low: int = 0, high: int | None = None) -> int:
    text = row[column].strip()
    try:
        value = int(float(text)) if "." in text and float(text).is_integer() else int(text)
    except ValueError:
        raise TraceError(f"{where}: {column} must be an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise TraceError(f"{where}: {column} must be {bounds}, got {value}")
    return value


def optional_number(row: dict[str, str], column: str, where: str) -> float | None:
    text = row.get(column, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise TraceError(f"{where}: {column} must be a number, got {text!r}") from None
