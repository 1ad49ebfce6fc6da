"""Borrowing is what a team uses above its guarantee now: not a flag a pod keeps from the moment
it was bound, and nothing at all while quotas are off (docs/gangs-and-quotas.md)."""

from __future__ import annotations

from collections import Counter

from scheduler.core.quotas import QuotaBook, QuotaConfig, Team
from simulator.metrics import borrowed_by_team


def test_without_teams_nothing_is_borrowed():
    book = QuotaBook()
    book.charge("u1", "undeclared", 3000, reserved=False)
    assert not book.enabled
    assert book.standings(8000)["undeclared"].borrowed_milli == 0


def test_with_teams_borrowing_is_usage_above_the_guarantee_now():
    book = QuotaBook(QuotaConfig(teams=(Team("ml", 2000),)))
    book.charge("old", "ml", 2000, reserved=False)
    book.charge("new", "ml", 1000, reserved=False)  # bound above the guarantee: borrowed
    assert book.standings(8000)["ml"].borrowed_milli == 1000
    book.uncharge("old")  # the team is back under its guarantee: "new" borrows nothing any more
    assert book.standings(8000)["ml"].borrowed_milli == 0


def test_the_simulator_counts_borrowing_from_usage_not_from_bind_flags():
    used = Counter({"ml": 14_200, "cv": 3_000, "guest": 500})
    guaranteed = {"ml": 16_000, "cv": 2_000}
    # ml is under its 16 GPUs (whatever its pods were flagged at bind); cv 1 GPU above; guest has no guarantee
    assert borrowed_by_team(used, guaranteed, quotas=True) == {"ml": 0, "cv": 1000, "guest": 500}
    assert borrowed_by_team(used, guaranteed, quotas=False) == {"ml": 0, "cv": 0, "guest": 0}
