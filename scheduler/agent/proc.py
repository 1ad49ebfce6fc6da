"""Who runs a GPU process: the pod UID from its cgroup path, and its command name.

NVML lists the PIDs holding a context on each GPU (host PID namespace: the DaemonSet runs
with `hostPID: true`, or mounts the host's /proc and passes `--proc-root`). The kubelet puts
every container in a cgroup whose path carries the pod UID, in any of its layouts:

    cgroupfs  (v1/v2)  /kubepods/burstable/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/<container>
    systemd   (v1/v2)  /kubepods.slice/kubepods-burstable.slice/
                       kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-<id>.scope

(systemd writes the UID with underscores; it is given back with dashes.) Reading /proc is
the only I/O here; a process that exited in between is simply unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


@dataclass(frozen=True, slots=True)
class ProcessOwner:
    """`pod_uid` "" means not in a pod (a host process) when `known`, or unknown otherwise."""

    pod_uid: str = ""
    command: str = ""

    @property
    def known(self) -> bool:
        return bool(self.pod_uid or self.command)


class ProcessResolver(Protocol):
    def owner(self, pid: int) -> ProcessOwner: ...


def pod_uid_from_cgroup(text: str) -> str:
    """The pod UID in a /proc/PID/cgroup file's text, or "" when the process is in no pod."""
    for line in text.splitlines():
        m = _POD_UID.search(line)
        if m:
            return m.group(1).replace("_", "-")
    return ""


class ProcResolver:
    """`ProcessResolver` over a /proc tree (the host's, or a copy in tests)."""

    def __init__(self, root: str | Path = "/proc") -> None:
        self.root = Path(root)

    def owner(self, pid: int) -> ProcessOwner:
        base = self.root / str(pid)
        try:
            cgroup = (base / "cgroup").read_text()
        except OSError:
            return ProcessOwner()
        try:
            command = (base / "comm").read_text().strip()
        except OSError:
            command = "?"
        return ProcessOwner(pod_uid=pod_uid_from_cgroup(cgroup), command=command or "?")
