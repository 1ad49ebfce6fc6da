"""The `gpusched` command. Each subcommand lives in its own module; `COMMANDS` lists them all.

Every subcommand reports bad arguments or unreadable files as one line on stderr and exit
code 2 (`UsageError`), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from scheduler.cli.errors import UsageError

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("scheduler.cli.serve", "run the scheduler extender (HTTP) for kube-scheduler"),
    "explain": ("scheduler.cli.explain", "where a workload's pods would go (a gang whole) and why, each node's score "
                                         "term by term"),
    "demo": ("scheduler.cli.demo", "run the bundled demo and write its report"),
    "simulate": ("scheduler.cli.simulate", "replay a trace or generated workload through the scheduler, write a report"),
    "webhook-cert": ("scheduler.cli.webhook_cert", "write a CA and serving certificate for the admission webhook"),
    "agent": ("scheduler.cli.agent", "run the node agent: publish this node's GPUs, health and the truth of its pods"),
}


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2), not a usage dump."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    parser = _OneLineParser(prog="gpusched", description="GPU-aware scheduling for Kubernetes")
    try:
        installed = version("gpusched")
    except PackageNotFoundError:  # run from a source tree that was never installed
        installed = "unknown (not installed)"
    parser.add_argument("--version", action="version", version=f"gpusched {installed}", help="print the version")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UsageError as e:
        print(f"gpusched {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
