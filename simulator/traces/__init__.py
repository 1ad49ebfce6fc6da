"""Trace readers: pod lists and node lists of the public traces in `../shared/traces/`, read by path.

Every reader reports a bad input as `TraceError` with one line naming the file and the line
(`path:12: num_gpu must be an integer 0..64, got 'x'`), which the CLI turns into exit code 2.
Nothing here is copied from the traces: the files are read where they lie.
"""

from simulator.traces.csvrows import TraceError

__all__ = ["TraceError"]
