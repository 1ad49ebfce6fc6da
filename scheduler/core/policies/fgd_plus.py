"""fgd-plus and its ablations: FGD's fragmentation gradient, plus the GPU it cannot see being lost.

For a fitting node, x is what placing the pod there saves, in milli-GPU expected over the workload M
(benchmarks/results/policies.md measures every term):

    x = ΔF / |M|                        FGD's fragmentation reduction (`fragmentation.reduction`)
      − cpu · ΔS                        GPU stranded by CPU running out (`stranding`)
      − models · d · φ_X                taking d milli-GPU of a model other pods depend on (`scarcity`)

fgd-plus (the default) uses these terms only where they pay: a rehearsal (`rehearsal`) plays M on a
miniature of the cluster under the terms (`fgd-plus-terms`) and under FGD, four paired fills each
to 130 % of its GPU arrived, and unless the terms leave less GPU unallocated by more than the
rehearsal's standard error, FGD itself decides. Every reading of the cluster tried instead (the CPU slack σ below, the CPU surplus per
node, a σ counting CPU-only pods) failed on inventories made after it; the terms won up to 4 pp and
lost up to 2.2 pp on clusters those readings could not tell apart (benchmarks/results/
robustness-diagnostic.md). In the server the rehearsal is played off the scheduling path
(`rehearsal_board`).

fgd-plus-terms does not keep `cpu` constant: the stranding term earns its place only where
CPU is tight but sufficient, so its weight follows from the cluster and M:

    cpu = 1.0 · relevance(σ),   σ = C / (G · ρ̄)            (`stranding.cluster_slack`, `stranding.relevance`)

with C the CPU of the GPU nodes, G their milli-GPU and ρ̄ = Σ_m q_m ρ_m the CPU per milli-GPU of M's
GPU pods. relevance is 1 for 1 ≤ σ ≤ 1.75, falls linearly to 0 at σ = 2 and is 0 below σ = 1.
Below 1 the GPU pods alone would run the CPU out first: GPUs are stranded wherever pods go, and
the term only moves where, against FGD's gradient (openb with half its CPU, σ ≈ 0.8: +0.6 pp on
multigpu50 with the constant weight). With twice the CPU the GPU pods need, a node runs out only in
corners (PAI 2020, σ ≈ 2.0: +0.04 pp on cpu250 at full weight; spot 2026's single-GPU hosts with
128 vCPU, σ ≈ 5.6: +0.08 pp on the default pods), and pulling pods away from those corners costs
more fragmentation than it saves. openb's 17 traces sit at σ ≈ 1.6, where the weight is the 1.0
they were tuned with (fgd-plus-fixed keeps it everywhere). The band's upper edge was placed
between openb (1.6-1.7) and PAI (2.0) by those measurements; the held-out inventories of
benchmarks/results/robustness-held-out.md check it on shapes that played no part.
Below σ = 1 the model term goes too: CPU binds before any GPU pool does, and keeping a pool free
for the pods tied to it saves nothing (openb with half its CPU, gpuspec33: +0.11 pp with it).
The model term is charged only while some pool is over-asked, max_X φ_X ≥ 1 (`scarcity.OVER_ASKED`):
φ_X = 1 is where the pods tied to X ask of X exactly X's share of the free GPU. Below it every pool
can absorb what its tied pods will ask if the mix holds, and keeping it free costs fragmentation
for nothing: PAI 2020's pools, renamed by rank, peak at φ = 0.71 on the empty cluster, where the
ungated term lost to FGD (gpuspec33, +0.075 ± 0.027 pp over 10 seeds; gated −0.005 ± 0.019);
openb's T4 pool starts at 1.34. φ comes from the current books, so the gate opens as a pool fills
and a restart, which rebuilds the books, rebuilds the gate with them. While the gate is shut, the
order stays fgd-plus's own: handing the moments without a term to FGD's tie-break mixes two orders
in one run, and that cost +0.012 ± 0.009 pp on the same cell (10 seeds).
Where the CPU weight is 0 and no pod of M is tied to a model, neither term has anything to say and
fgd-plus is FGD itself (its scores, pick and tie-break), not FGD with this module's own tie-break
and share pick, which differ from FGD's by noise of a few hundredths of a point either way.

score = ⌊100 · sigmoid(x / 1000)⌋ (FGD's integer bins: nodes within a few hundredths of a GPU of each
other tie) + a tie-break below one point: best-fit (`packing`) and then a fixed pseudo-random node
order drawn from the seed. FGD's published numbers rely on such an order (the artifact's
kube-scheduler takes the first tied node in a seeded order; a uniform pick among ties leaves twice
the GPUs idle), so these policies carry their own and place the same under any caller's tie-break.
`binned=False` scores x itself (fgd-exact), which loses: the bins are what let a consistent order
consolidate.

GPU inside the node: the share's GPU with the largest exact node-local x (fragmentation and CPU),
then the tightest; whole GPUs as gpu_pick. The model term is charged for that GPU's model (on a
node with mixed models the GPU is chosen without it). Node-local parts are cached per pod shape
and node version (`node_memo`); φ is global, recomputed when the books change from per-row sums
kept current row by row (`scarcity.FreeByModel`, `fgd_plus_inputs.model_pressure`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from scheduler.core import fragmentation as frag
from scheduler.core import gpu_pick, rehearsal, scarcity, stranding
from scheduler.core.policies import fgd, node_memo
from scheduler.core.policies.base import Breakdown, Policy, PolicyContext, Term
from scheduler.core.policies.fgd_plus_inputs import (
    cpu_slack,
    model_pressure,
    node_order,
    node_saving,
    per_workload,
    tightness,
)
from scheduler.core.request import PodRequest
from scheduler.core.state import ClusterState


@dataclass(frozen=True)
class Terms:
    binned: bool = True
    """FGD's integer sigmoid bins; False: the exact saving decides and the order breaks exact ties."""
    cpu: float = 0.0
    """Weight of the stranded-GPU change."""
    models: float = 0.0
    """Weight of the model pressure φ."""
    packing: float = 0.0
    """Within a bin, prefer the node left tightest in CPU and GPU (bestfit's measure), 0..0.5 of a point."""
    gated: bool = False
    """Charge the model pressure only while some pool is over-asked (max φ ≥ `scarcity.OVER_ASKED`)."""
    adaptive: bool = False
    """Scale the CPU weight by how much stranding can matter on this cluster for this workload
    (`stranding.relevance` of the CPU slack σ); False: the constant weight, as tuned on openb."""
    rehearsed: bool = False
    """Use these terms only where a rehearsal on a miniature of the cluster (`rehearsal`) finds them
    leaving less GPU unallocated than FGD for this M; elsewhere FGD itself decides."""

    def __post_init__(self) -> None:
        if self.cpu < 0 or self.models < 0 or not 0 <= self.packing <= 0.5:
            raise ValueError(f"invalid terms {self}")


def make(name: str, summary: str, terms: Terms) -> Policy:
    candidate = make(f"{name}-terms", summary, replace(terms, rehearsed=False)) if terms.rehearsed else None

    def weighted(state: ClusterState, pod: PodRequest, ctx: PolicyContext) -> tuple[float, float, frag.TaskMatrix]:
        """(the CPU and model weights for this cluster and workload, M's task matrix)."""
        tasks = node_memo.tasks_of(state, node_memo.workload_of(pod, ctx), ctx)
        if not terms.adaptive:
            return terms.cpu, terms.models, tasks
        slack = cpu_slack(state, ctx, tasks)
        return terms.cpu * stranding.relevance(slack), terms.models if slack >= 1.0 else 0.0, tasks

    def local(ctx: PolicyContext, cpu: float) -> node_memo.Compute:
        def compute(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
                    tasks: frag.TaskMatrix) -> tuple[np.ndarray, np.ndarray]:
            demand = per_workload(ctx, "cpu-demand", tasks, stranding.cpu_demand) if cpu else None
            return node_saving(state, pod, rows, slot_fit, tasks, cpu=cpu, demand=demand)
        return compute

    def constrained(models: float, tasks: frag.TaskMatrix, ctx: PolicyContext) -> bool:
        """A model weight, and some pod of M tied to a model: the model term has something to say."""
        return bool(models) and per_workload(ctx, "constrained", tasks, scarcity.constrained)

    def pressure(state: ClusterState, models: float, tasks: frag.TaskMatrix, ctx: PolicyContext) -> np.ndarray | None:
        """φ per model id where the model term acts now, else None (`constrained` says no or, gated,
        no pool is asked for more than its share of the free GPU)."""
        if not constrained(models, tasks, ctx):
            return None
        phi = model_pressure(state, ctx, tasks)
        return None if terms.gated and phi.max() < scarcity.OVER_ASKED else phi

    def verdict(state: ClusterState, pod: PodRequest, ctx: PolicyContext) -> rehearsal.Verdict | None:
        """The rehearsal of these terms against FGD for this cluster's node shapes, M and seed, played
        once per (M, census of node shapes, seed) and kept in the context: a node re-described with
        its shape unchanged, or a GPU turning unhealthy, plays nothing again. With the server's
        board (`ctx.rehearsals`) it is played off the scheduling path, and None (FGD's order) or the
        last verdict settled stands in until then."""
        assert candidate is not None
        workload = node_memo.workload_of(pod, ctx)
        shapes = ctx.memo.get("census")
        if shapes is None or shapes[0] is not state or shapes[1] != state.capacity_version:
            shapes = (state, state.capacity_version, rehearsal.census(n for n in state.specs[:state.size] if n))
            ctx.memo["census"] = shapes
        census, seed = shapes[2], ctx.seed

        def play() -> rehearsal.Verdict:
            return rehearsal.rehearse(census, workload, candidate, fgd.POLICY, seed=seed)

        cached = ctx.memo.get("rehearsal")
        if cached is None or cached[0] is not workload or cached[1] is not census or cached[2] != seed:
            key = (workload.types, tuple(workload.weights.tolist()), tuple(workload.memory.tolist()), census, seed)
            cached = (workload, census, seed, key, None if ctx.rehearsals else play())
            ctx.memo["rehearsal"] = cached
        if ctx.rehearsals is None:
            return cached[4]
        return ctx.rehearsals.ask(cached[3], play)

    def plain_fgd(state: ClusterState, pod: PodRequest, cpu: float, models: float, tasks: frag.TaskMatrix,
                  ctx: PolicyContext) -> bool:
        """FGD itself decides (its own scores and pick, its caller's tie-break), so such a cluster gets
        FGD exactly: adaptive and neither term has anything to add for this cluster and M, or
        rehearsed and the rehearsal found FGD's order no worse. Decided per M, not per moment: a
        gated model term that is off for now keeps fgd-plus's own order."""
        if terms.adaptive and not cpu and not constrained(models, tasks, ctx):
            return True
        if not terms.rehearsed:
            return False
        found = verdict(state, pod, ctx)
        return found is None or not found.candidate_wins

    def rehearsed(state: ClusterState, pod: PodRequest, rows: np.ndarray, ctx: PolicyContext) -> tuple[Term, ...]:
        """The rehearsal's finding, where one was played, as an input line of `explain` (no value)."""
        if not terms.rehearsed or "rehearsal" not in ctx.memo:
            return ()
        found = verdict(state, pod, ctx)
        said = found.describe("fgd-plus-terms", "fgd") if found else "rehearsal not played yet: fgd's order decides"
        return (Term(said, 0.0, np.zeros(len(rows))),)

    def score(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
              ctx: PolicyContext) -> np.ndarray:
        cpu, models, tasks = weighted(state, pod, ctx)
        if plain_fgd(state, pod, cpu, models, tasks, ctx):
            return fgd.score(state, pod, rows, slot_fit, ctx)
        # the cached part depends on the CPU weight only
        saving, slot = node_memo.cached(state, pod, rows, slot_fit, ctx, namespace=f"fgd-plus:{cpu}",
                                        compute=local(ctx, cpu))
        phi = pressure(state, models, tasks, ctx)
        if phi is not None and pod.total_milli:
            saving = saving - models * pod.total_milli * phi[state.model_id[rows, np.maximum(slot, 0)]]
        order = node_order(state, ctx)[rows]
        if not terms.binned:
            return saving / 1000.0 + 1e-9 * order
        binned = np.floor(100.0 / (1.0 + np.exp(-saving / 1000.0)))
        packed = terms.packing * tightness(state, pod, rows) if terms.packing else 0.0
        return binned + packed + 1e-3 * order

    def explain(state: ClusterState, pod: PodRequest, rows: np.ndarray, slot_fit: np.ndarray,
                ctx: PolicyContext) -> Breakdown:
        """`score`'s sum term by term; x's parts (fragmentation, CPU, models) as inputs."""
        cpu, models, tasks = weighted(state, pod, ctx)
        if plain_fgd(state, pod, cpu, models, tasks, ctx):
            breakdown = fgd.POLICY.explain(state, pod, rows, slot_fit, ctx)
            return Breakdown(breakdown.terms, (*breakdown.inputs, *rehearsed(state, pod, rows, ctx)))
        saving, slot = node_memo.cached(state, pod, rows, slot_fit, ctx, namespace=f"fgd-plus:{cpu}",
                                        compute=local(ctx, cpu))
        fragmentation, _ = node_saving(state, pod, rows, slot_fit, tasks, cpu=0.0)
        charged = np.zeros(len(rows))
        phi = pressure(state, models, tasks, ctx)
        if phi is not None and pod.total_milli:
            charged = pod.total_milli * phi[state.model_id[rows, np.maximum(slot, 0)]]
            saving = saving - models * charged
        inputs = (Term("x: fragmentation saved, ΔF/|M| (milli-GPU)", 1.0, fragmentation),
                  Term(f"x: − cpu·ΔS, GPU stranded by CPU running out (cpu = {cpu:g})", 1.0,
                       saving + models * charged - fragmentation),
                  Term("x: model pressure, d·φ", -models, charged), *rehearsed(state, pod, rows, ctx))
        order = node_order(state, ctx)[rows]
        if not terms.binned:
            return Breakdown((Term("x / 1000", 1.0, saving / 1000.0), Term("seeded node order", 1e-9, order)), inputs)
        binned = np.floor(100.0 / (1.0 + np.exp(-saving / 1000.0)))
        sigmoid = 1.0 / (1.0 + np.exp(-saving / 1000.0))
        parts = (Term("sigmoid(x / 1000)", 100.0, sigmoid),
                 Term("integer bin (floor)", 1.0, binned - 100.0 * sigmoid, rounding=True))
        if terms.packing:
            parts += (Term("tightness after (bestfit's measure)", terms.packing, tightness(state, pod, rows)),)
        return Breakdown((*parts, Term("seeded node order", 1e-3, order)), inputs)

    def pick(state: ClusterState, pod: PodRequest, row: int, slot_fit: np.ndarray,
             ctx: PolicyContext) -> tuple[int, ...]:
        cpu, models, tasks = weighted(state, pod, ctx)
        if plain_fgd(state, pod, cpu, models, tasks, ctx):
            return fgd.pick(state, pod, row, slot_fit, ctx)
        if pod.is_share:
            _, slot = node_memo.cached(state, pod, np.array([row]), slot_fit[None, :], ctx,
                                       namespace=f"fgd-plus:{cpu}", compute=local(ctx, cpu))
            return (int(slot[0]),)
        if pod.gpus:
            return gpu_pick.whole_gpus(state, row, slot_fit, pod.gpus)
        return ()

    return Policy(name, summary, score, pick, explain)


def played_verdict(ctx: PolicyContext) -> rehearsal.Verdict | None:
    """The verdict of the last rehearsal fgd-plus played in place in this context, if any (for reports)."""
    cached = ctx.memo.get("rehearsal")
    return cached[4] if cached else None


FGD_EXACT = make("fgd-exact", "FGD scored by the exact fragmentation change (no integer bins)", Terms(binned=False))
FGD_BESTFIT = make("fgd-bestfit", "FGD, ties to the node left tightest (best-fit)", Terms(packing=0.5))
FGD_CPU = make("fgd-cpu", "FGD plus the GPU stranded when CPU runs out", Terms(cpu=1.0))
FGD_MODELS = make("fgd-models", "FGD plus the pressure on GPU models that constrained pods need", Terms(models=0.5))
FGD_PLUS_FIXED = make("fgd-plus-fixed", "FGD plus stranded GPU (CPU, constant weight) and model pressure",
                      Terms(cpu=1.0, models=0.5))
FGD_PLUS_TERMS = make("fgd-plus-terms", "FGD plus stranded GPU (CPU, weighted by how scarce CPU is) and "
                      "model pressure, without the rehearsal", Terms(cpu=1.0, models=0.5, gated=True, adaptive=True))
FGD_PLUS = make("fgd-plus", "fgd-plus-terms where a rehearsal on a miniature of the cluster finds it beats FGD, "
                "else FGD", Terms(cpu=1.0, models=0.5, gated=True, adaptive=True, rehearsed=True))
POLICIES = (FGD_EXACT, FGD_BESTFIT, FGD_CPU, FGD_MODELS, FGD_PLUS_FIXED, FGD_PLUS_TERMS, FGD_PLUS)
