"""Is a node's gpusched agent still alive? (DESIGN §4 "MIG and unhealthy GPUs").

The agent stamps the node annotation `gpusched.io/agent-heartbeat` (RFC 3339, UTC) at a fixed
interval (default 30 s). A node whose stamp is older than the staleness limit (default 2 min)
takes no new pods: its GPU list may no longer be true (a GPU may have fallen off the bus and
nobody is left to say so). Pods already there keep their records.

How the Kubernetes adapter uses it, on every node add/update from the watch AND on a periodic
sweep (a silent agent produces no node updates, so the watch alone never notices):

    reason = heartbeat_reason(node.annotations.get(AGENT_HEARTBEAT_ANNOTATION),
                              now=clock(), staleness=settings.agent_staleness, node=name)
    engine.set_node_unavailable(name, reason)        # "" puts the node back into service

A sweep every `staleness / 4` keeps the detection delay within a quarter of the limit.
Nodes without the annotation never ran the agent: they are described by GPU feature
discovery labels instead (`nodeinfo.gpus_from_labels`) and are never stale.

Pure: the caller owns the clock and passes `now` (timezone-aware).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DEFAULT_STALENESS = timedelta(minutes=2)


def heartbeat_reason(heartbeat: str | None, *, now: datetime, staleness: timedelta = DEFAULT_STALENESS,
                     node: str) -> str:
    """The unavailability reason for `node`, or "" when it may take new pods.

    - no heartbeat annotation (None or ""): "" (an agent-less node, GFD labels describe it);
    - an unreadable stamp: unavailable (we cannot tell that the agent is alive);
    - older than `staleness`: `gpusched agent on node X silent for 3m`;
    - newer, or in the future (clock skew between nodes): "".
    """
    if not heartbeat:
        return ""
    beat = parse_rfc3339(heartbeat)
    if beat is None:
        return f"gpusched agent on node {node} wrote an unreadable heartbeat {heartbeat!r}"
    age = now - beat
    if age > staleness:
        return f"gpusched agent on node {node} silent for {short_duration(age)}"
    return ""


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 timestamp (`2024-05-01T12:00:00Z`, fractional seconds and offsets allowed)
    as an aware datetime, or None when it is not one."""
    text = text.strip()
    if not text or "T" not in text.upper():
        return None
    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "zZ" else text)
    except ValueError:
        return None
    if value.tzinfo is None:
        return None  # RFC 3339 requires an offset; a naive time would be read in an unknown zone
    return value


def format_rfc3339(moment: datetime) -> str:
    """The heartbeat format the agent writes: UTC, whole seconds, `Z` suffix."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_duration(age: timedelta) -> str:
    """`45s`, `3m`, `2h`, `3d`: the largest whole unit, rounded down (kubectl's short ages).

    Seconds below 2 minutes would read oddly as `1m` for 119 s, so seconds are kept up to
    119 s; minutes up to 119 min; hours up to 47 h; days after that.
    """
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
