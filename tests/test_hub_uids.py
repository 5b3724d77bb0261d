"""hub/uids.py: one uid per student on Kubernetes, stable across restarts, refused when two users would share one;
and the exchange's owner check (hub/exchange.py) with those uids, where students have no OS account."""
from __future__ import annotations

import os
import random
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hub import exchange, uids  # noqa: E402


def test_a_uid_is_a_fixed_function_of_the_username():
    # pinned: a change would give every student of a running class another uid, and their earlier submissions
    # (owned by the old one) would no longer be theirs
    assert uids.uid_for("alice", {}) == 1058882287
    assert uids.uid_for("535fa085-f685-4e5a-8ef5-76b8a8c1b6ce", {}) == 122215524      # a Canvas LTI `sub`
    assert uids.uid_for("alice", {"alice": 1_000_042}) == 1_000_042


def test_uids_lie_in_their_range_and_a_large_class_shares_none():
    r = random.Random(0)
    names = [str(uuid.UUID(int=r.getrandbits(128))) for _ in range(20_000)]
    got = [uids.uid_for(n, {}) for n in names]
    assert all(uids.UID_BASE <= u < uids.UID_BASE + uids.UID_SPAN for u in got)
    assert min(got) > 65_535 and max(got) < 2**31
    assert uids.collisions(names, {}) == {}


def test_a_collision_is_found_and_an_override_separates_it():
    shared = uids.uid_for("alice", {})
    table = {"bob": shared}
    assert uids.collisions(["bob", "alice", "carol"], table) == {shared: ["alice", "bob"]}
    assert uids.collisions(["bob", "alice"], {"bob": shared + 1}) == {}


def fake_spawner(name: str, everyone: list[str], groups=()):
    db = SimpleNamespace(query=lambda column: [(n,) for n in everyone])
    user = SimpleNamespace(name=name, db=db, groups=[SimpleNamespace(name=g) for g in groups])
    return SimpleNamespace(user=user)


def test_the_hub_refuses_a_user_whose_uid_another_user_has(monkeypatch):
    monkeypatch.setenv(uids.OVERRIDES_ENV, f'{{"bob": {uids.uid_for("alice", {})}}}')
    with pytest.raises(uids.UidError, match=r"'bob' and 'alice' would run as the same uid .*DDPM_HUB_UID_OVERRIDES"):
        uids.spawner_uid(fake_spawner("bob", ["alice", "bob", "carol"]))
    assert uids.spawner_uid(fake_spawner("carol", ["alice", "bob", "carol"])) == uids.uid_for("carol", {})
    monkeypatch.setenv(uids.OVERRIDES_ENV, "{}")
    assert uids.spawner_uid(fake_spawner("bob", ["alice", "bob"])) == uids.uid_for("bob", {})


def test_only_instructors_get_the_exchanges_group():
    assert uids.spawner_supplemental_gids(fake_spawner("p", [], groups=["instructors"])) == [uids.INSTRUCTORS_GID]
    assert uids.spawner_supplemental_gids(fake_spawner("s", [], groups=["other"])) == []


@pytest.mark.parametrize("raw, says", [("{alice: 1}", "is not JSON"), ("[1, 2]", "must be a JSON object"),
                                       ('{"alice": 1000}', "is not a uid from"),
                                       ('{"alice": true}', "is not a uid from")])
def test_a_bad_override_table_says_what_is_wrong(raw, says):
    with pytest.raises(uids.UidError, match=says):
        uids.overrides_from_env({uids.OVERRIDES_ENV: raw})


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a folder to a uid without an account: needs root")
def test_the_exchanges_owner_check_uses_the_hubs_uids_on_kubernetes(tmp_path, monkeypatch):
    folder = tmp_path / "alice+ps1+2026-12-07 10:00:00.000000 UTC+abc"
    folder.mkdir()
    os.chown(folder, uids.uid_for("alice", {}), 0)
    monkeypatch.delenv(uids.MODE_ENV, raising=False)
    assert not exchange.submission_owner_matches(str(folder), "alice")      # no OS account named alice here
    monkeypatch.setenv(uids.MODE_ENV, "hash")
    monkeypatch.setenv(uids.OVERRIDES_ENV, "{}")
    assert exchange.submission_owner_matches(str(folder), "alice")
    assert not exchange.submission_owner_matches(str(folder), "bob")
