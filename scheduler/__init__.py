"""gpusched: GPU-aware scheduling for Kubernetes.

Packages:
    core       the pure placement core (numpy only, no I/O, no clock)
    extender   the HTTP scheduler extender (aiohttp) around the core
    cli        the `gpusched` command
"""

__version__ = "0.1.0"
