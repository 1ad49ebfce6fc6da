"""Is an MPS control daemon running on this node? (one half of `inventory.sharing_mode`)

`nvidia-cuda-mps-control -d` creates its `control` pipe in its pipe directory. Where that is:
- `$CUDA_MPS_PIPE_DIRECTORY` when the agent's environment sets it (standalone MPS setups),
- `/tmp/nvidia-mps`, the MPS default,
- `/run/nvidia/mps/nvidia.com/gpu/pipe`, the NVIDIA device plugin's MPS daemon on the host
  (`<root>/<resource>/pipe`, root `/run/nvidia/mps` by default, `/mps` inside its container).
The DaemonSet mounts these host paths. A pipe left behind by a crashed daemon is a risk the
compute-mode half of the rule covers (the device plugin puts GPUs back to DEFAULT on stop).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PIPE_DIRS = ("/tmp/nvidia-mps", "/run/nvidia/mps/nvidia.com/gpu/pipe")


def default_pipe_dirs() -> tuple[str, ...]:
    env = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
    return ((env,) if env else ()) + DEFAULT_PIPE_DIRS


class PipeDirProbe:
    """True when any of the directories holds an MPS `control` pipe (a FIFO or a socket)."""

    def __init__(self, dirs: Sequence[str | Path]) -> None:
        self.dirs = tuple(Path(d) for d in dirs)

    def __call__(self) -> bool:
        for directory in self.dirs:
            try:
                mode = (directory / "control").stat().st_mode
            except OSError:
                continue
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                return True
        return False
