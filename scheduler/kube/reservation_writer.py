"""Writing gang reservations onto their pending members, and holding binds until they are written.

The service hands every journal record to `ReservationWriter.note` (its `keeper` in live mode). A `reserve` record becomes the annotation `gpusched.io/reservation` on each member still
pending (`reservations.annotation_of`). The write does a second job: kube-scheduler parks the members
it tried before their gang was complete as unschedulable, and an update of a parked pod moves it
back to the active queue, so the gang binds within seconds of its last member arriving instead of
at kube-scheduler's 5-minute flush of unschedulable pods. A `close` other than complete clears the
annotation from the members again (they are pending like any other pod).

A member's bind waits for its reservation's writes (`settled`), so no member is bound from a
reservation that a restarted replica could not rebuild from the pods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from scheduler.core import contract as c
from scheduler.core.allocation import Allocation
from scheduler.core.gangs import GangKey
from scheduler.kube.client import STRATEGIC_MERGE, ApiError, KubeClient
from scheduler.kube.reservations import annotation_of

log = logging.getLogger(__name__)


class ReservationWriter:
    """The service's `RecordKeeper` in live mode: reservations onto their pods, binds wait for them."""

    def __init__(self, client: KubeClient, *, timeout_s: float = 10.0) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self._writes: dict[str, asyncio.Task] = {}
        """Member UID -> the task writing its reservation's annotations (all members at once)."""
        self._members: dict[tuple[GangKey, int], list[Mapping[str, Any]]] = {}
        self.on_result: list[Callable[[str], None]] = []
        """Observers of each annotation write's outcome ("written", "failed"): metrics."""

    def note(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            if record["kind"] == "reserve":
                self._reserved(record)
            elif record["kind"] == "close":
                self._closed(record)

    def settle(self) -> None:
        """Nothing to compact: the pods are the record."""

    async def settled(self, alloc: Allocation) -> None:
        """Wait until the reservation `alloc` came from is written (or failed to be)."""
        task = self._writes.get(alloc.uid)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        tasks = set(self._writes.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------- internals
    def _reserved(self, record: Mapping[str, Any]) -> None:
        key = (GangKey(*record["gang"]), int(record["id"]))
        members = list(record["members"])
        self._members[key] = members
        writes = {m["uid"]: annotation_of(record, m) for m in members}
        task = asyncio.get_running_loop().create_task(self._write_all(members, writes),
                                                     name=f"reservation {key[0]} #{key[1]}")
        for member in members:
            self._writes[member["uid"]] = task
        task.add_done_callback(lambda _t, uids=tuple(writes): self._done(uids, _t))

    def _closed(self, record: Mapping[str, Any]) -> None:
        members = self._members.pop((GangKey(*record["gang"]), int(record["id"])), [])
        if members and record["outcome"] != "complete":
            # Members left pending must not carry a reservation that no longer holds anything.
            asyncio.get_running_loop().create_task(self._write_all(members, dict.fromkeys(
                (m["uid"] for m in members), None)), name="reservation cleared")

    def _done(self, uids: tuple[str, ...], task: asyncio.Task) -> None:
        for uid in uids:
            if self._writes.get(uid) is task:
                del self._writes[uid]

    async def _write_all(self, members: list[Mapping[str, Any]], values: Mapping[str, str | None]) -> None:
        await asyncio.gather(*(self._write(m, values[m["uid"]]) for m in members))

    async def _write(self, member: Mapping[str, Any], value: str | None) -> None:
        patch = {"metadata": {"uid": member["uid"], "annotations": {c.RESERVATION_ANNOTATION: value}}}
        try:
            await self.client.call("patch pod", self.client.core.patch_namespaced_pod, member["name"],
                                   member["namespace"], patch, _content_type=STRATEGIC_MERGE,
                                   _request_timeout=self.timeout_s)
            outcome = "written"
        except ApiError as e:  # deleted or re-created meanwhile: the reservation closes by the watch
            log.info("reservation annotation on %s/%s not written: %s", member["namespace"], member["name"], e)
            outcome = "failed"
        for observer in self.on_result:
            observer(outcome)
