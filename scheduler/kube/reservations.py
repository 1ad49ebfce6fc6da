"""Gang reservations kept on the pods: the annotation's format, shared by its writer and restorer.

A reservation lives in the books of the replica that planned it. To make it durable and visible
to a restarted or standby replica, `reservation_writer.ReservationWriter` writes it onto each member
still pending as the annotation `gpusched.io/reservation`: the reservation's header and that
member's held grant. `reservation_restore.ReservationRestorer` rebuilds it from those pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

HEADER = ("gang", "id", "size", "at", "deadline", "nodes", "zones", "racks")
"""The fields of a journal `reserve` record that every member's annotation repeats."""
MAX_RESERVATION_S = 7 * 24 * 3600.0
"""No reservation is believed to last longer than this (a forged or corrupt deadline)."""


def annotation_of(record: Mapping[str, Any], member: Mapping[str, Any]) -> str:
    """The annotation for one member of a journal `reserve` record."""
    return orjson.dumps({**{k: record[k] for k in HEADER}, "member": member}).decode()
