"""The FGD artifact's published per-run results (`fgd-expected-results/`, see its README).

One row per (workload, policy, seed) with the binned curve 0..130; read into
`published[(trace, policy)] -> {"allocated": [seeds x 131], "fragment": [...]}`, with the artifact's
policy directories mapped to our policy names.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

POLICY_NAMES = {"01-Random": "random", "02-DotProd": "dotprod", "03-GpuClustering": "clustering",
                "04-GpuPacking": "packing", "05-BestFit": "bestfit", "06-FGD": "fgd"}
FILES = {"allocated": "analysis_allo_discrete.csv", "fragment": "analysis_frag_discrete.csv"}


def default_folder(pods_path: Path) -> Path:
    """`<trace root>/fgd-expected-results` for a pod list in `<trace root>/csv/`."""
    return pods_path.resolve().parent.parent / "fgd-expected-results"


def load(folder: Path) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    out: dict[tuple[str, str], dict[str, list]] = {}
    for what, name in FILES.items():
        path = folder / name
        if not path.is_file():
            return {}
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                policy = POLICY_NAMES.get(row["sc_policy"])
                if policy is None:
                    continue
                values = [float(row[str(k)]) if row.get(str(k)) not in (None, "") else np.nan for k in range(131)]
                out.setdefault((row["workload"], policy), {}).setdefault(what, []).append(values)
    return {key: {what: np.array(v) for what, v in d.items()} for key, d in out.items()}
