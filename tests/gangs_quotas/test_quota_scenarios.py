"""Team quotas through the verbs, in-process and over real HTTP: limits, borrowing, reclaim.

The cluster: 4 nodes × 8 GPUs = 32 GPUs. vision is guaranteed 16 and may use up to 40
(weight 1); nlp is guaranteed 16, no max.
"""

from __future__ import annotations

from tests.gangs_quotas.builders import gang_of, nodes, teams, worker


def vision(name: str, gpus: int = 8) -> dict:
    return worker(name, gpus=gpus, namespace="vision").team("vision").build()


def nlp(name: str, gpus: int = 8) -> dict:
    return worker(name, gpus=gpus, namespace="nlp").team("nlp").build()


def team_row(state: dict, name: str) -> dict:
    return next(t for t in state["teams"]["teams"] if t["name"] == name)


async def borrowed_cluster(make):
    driver = await make(nodes(4, gpus=8), quotas=teams(vision=(16, 40), nlp=(16, None)))
    for i in range(4):  # vision takes the whole idle cluster: 16 within its guarantee, 16 borrowed
        assert (await driver.cycle(vision(f"v{i}"))).node is not None
    return driver


async def test_above_guarantee_a_team_borrows_and_its_pods_say_so(make):
    driver = await borrowed_cluster(make)
    marks = {u: a.borrowed for u, a in driver.engine.allocations.items()}
    assert marks == {"uid-vision-v0": False, "uid-vision-v1": False, "uid-vision-v2": True, "uid-vision-v3": True}
    assert driver.engine.allocations["uid-vision-v3"].annotations()["gpusched.io/borrowed"] == "true"
    row = team_row(await driver.state(), "vision")
    assert (row["usedMilli"], row["borrowedMilli"], row["guaranteedMilli"], row["maxMilli"]) == (32000, 16000, 16000,
                                                                                                 40000)


async def test_a_pod_over_its_teams_max_is_refused_on_every_node_with_the_numbers(make):
    driver = await make(nodes(6, gpus=8), quotas=teams(vision=(16, 40)))
    for i in range(5):
        assert (await driver.cycle(vision(f"v{i}"))).node is not None
    refused = await driver.cycle(vision("v5", gpus=1))
    assert refused.node is None and set(refused.unresolvable) == set(driver.names)
    assert refused.reasons == {"team vision: 40 GPUs in use + 1 asked would exceed its max of 40"}


async def test_when_the_guaranteed_team_comes_back_reclaim_takes_the_newest_borrowed_pod(make):
    driver = await borrowed_cluster(make)
    waiting = await driver.cycle(nlp("n0"))
    assert waiting.node is None and waiting.reasons == {"not enough free whole GPUs"}
    plan = (await driver.state())["reclaim"]
    assert plan == [{"for": "nlp/n0", "team": "nlp", "askMilli": 8000, "node": plan[0]["node"], "reason": "",
                     "victims": [{"pods": ["vision/v3"], "uids": ["uid-vision-v3"], "team": "vision",
                                  "milli": 8000}]}]
    if driver.kind == "http":
        assert "gpusched_reclaim_evictions_proposed 1.0" in await driver.metrics()
    await driver.release("uid-vision-v3")  # the reclaimer evicts; kube-scheduler retries the pod
    back = await driver.cycle(nlp("n0"))
    assert back.node == plan[0]["node"]
    assert driver.engine.allocations["uid-nlp-n0"].borrowed is False
    assert (await driver.state())["reclaim"] == []


async def test_reclaim_plans_add_up_and_never_touch_a_pod_within_its_teams_guarantee(make):
    driver = await borrowed_cluster(make)
    for i in range(3):
        await driver.cycle(nlp(f"n{i}"))
    plans = {p["for"]: ([v["pods"][0] for v in p["victims"]], p["reason"]) for p in (await driver.state())["reclaim"]}
    # The borrowed pods go, newest first, one per waiting pod; then nlp would be above its
    # guarantee, and vision's own 16 GPUs are never touched.
    assert plans == {"nlp/n0": (["vision/v3"], ""), "nlp/n1": (["vision/v2"], ""),
                     "nlp/n2": ([], "team nlp would be above its guarantee, so it may not reclaim")}


async def test_a_waiting_gang_of_a_team_under_its_guarantee_reclaims_whole_pods(make):
    driver = await borrowed_cluster(make)
    members = gang_of("bert", 2, namespace="nlp", team="nlp")
    for pod in members:
        assert (await driver.cycle(pod)).node is None
    plan = [p for p in (await driver.state())["reclaim"] if p["for"] == "gang nlp/bert"]
    assert [sorted(v["pods"][0] for v in p["victims"]) for p in plan] == [["vision/v2", "vision/v3"]]
    for victim in ("uid-vision-v2", "uid-vision-v3"):
        await driver.release(victim)
    assert len(await driver.settle(members)) == 2


async def test_the_preempt_verb_keeps_only_victims_reclaim_would_take(make):
    driver = await borrowed_cluster(make)
    request = driver.engine  # kube-scheduler proposes every vision pod on two nodes
    nlp_pod = worker("n0", gpus=8, namespace="nlp").team("nlp").request()
    on = {a.node: [a.uid] for a in request.allocations.values()}
    kept = driver.engine.preempt(nlp_pod, on)
    assert sorted(u for us in kept.values() for u in us) == ["uid-vision-v2", "uid-vision-v3"]


async def test_reclaim_plans_are_computed_once_until_something_changes(make, monkeypatch):
    from scheduler.core import reclaim_plans

    driver = await borrowed_cluster(make)
    await driver.cycle(nlp("n0"))
    calls = []
    real = reclaim_plans._plan
    monkeypatch.setattr(reclaim_plans, "_plan", lambda gates: calls.append(1) or real(gates))
    driver.engine.gates.plans_memo = None
    first = reclaim_plans.current_plans(driver.engine.gates)
    assert first and reclaim_plans.current_plans(driver.engine.gates) == first  # a scrape, then GET /state
    assert len(calls) == 1
    await driver.release("uid-vision-v3")  # the books moved: planned again
    reclaim_plans.current_plans(driver.engine.gates)
    assert len(calls) == 2
