"""`gpusched webhook-cert`: a CA and a serving certificate for the admission webhook, without cert-manager.

Writes `ca.crt`, `tls.crt` and `tls.key` into `--out` (the key readable by its owner only), for
deploy/components/self-managed-cert, which turns them into the webhook's Secret and caBundle.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from scheduler.cli.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", default="gpusched", help="the webhook's Service (default gpusched)")
    parser.add_argument("--namespace", default="gpu-system", help="its namespace (default gpu-system)")
    parser.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for ca.crt, tls.crt, tls.key")


def run(args: argparse.Namespace) -> int:
    from scheduler.extender.tls import issue_webhook_certificate

    if args.days < 1:
        raise UsageError("--days must be at least 1")
    issued = issue_webhook_certificate(service=args.service, namespace=args.namespace, days=args.days)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "ca.crt").write_bytes(issued.ca_pem)
        (out / "tls.crt").write_bytes(issued.cert_pem + issued.ca_pem)
        key = out / "tls.key"
        key.write_bytes(issued.key_pem)
        os.chmod(key, 0o600)
    except OSError as e:
        raise UsageError(f"{out}: {e.strerror or e}") from None
    print(f"wrote {out}/ca.crt, {out}/tls.crt and {out}/tls.key for "
          f"{args.service}.{args.namespace}.svc (valid {args.days} days)")
    return 0
