"""One uid per student on Kubernetes, where no OS account exists: the closed exchange (hub/exchange.py) keeps students
apart by the owner of each submission, so every student's pod must run as a uid of their own, the same at every start.

    uid_for("alice")          UID_BASE + (sha256 of the hub username) mod UID_SPAN, unless the admin set one for her
                              in DDPM_HUB_UID_OVERRIDES (a JSON object {"username": uid}); the same function in the
                              hub (KubeSpawner's ``uid`` / ``fs_gid``) and in the instructors' pods (the owner check
                              of ``OwnerCheckedExchangeCollect``), so no table has to be shared between them
    collisions(names)         {uid: [names]} for the uids two users would share: the hub refuses to start either
                              (:func:`spawner_uid`), naming both and the override that separates them

The hub's username is the LMS's id of the person (hub/auth.py), which never changes, so a student keeps their uid
across hub restarts, a new hub database and a new cluster.  Instructors also get :data:`INSTRUCTORS_GID` (the group
that reads the exchange's submissions) as a supplemental group.  Standard library only: the chart's hub image
loads this file as it is (docs/ZERO_TO_JUPYTERHUB.md).
"""
from __future__ import annotations

import hashlib
import json
import os

UID_BASE = 1_000_000            # above the system's, LDAP's usual and the course image's own accounts
UID_SPAN = 1 << 30              # uids stay below 2**31 (NFS, tar and Kubernetes take them)
INSTRUCTORS_GID = 1990          # the image's ddpm-instructors group (hub/k8s/Dockerfile)
INSTRUCTORS_GROUP = "instructors"   # the hub group (hub/settings.py INSTRUCTORS_GROUP)
OVERRIDES_ENV = "DDPM_HUB_UID_OVERRIDES"
MODE_ENV = "DDPM_HUB_UIDS"      # "hash" in the pods: the exchange's owner check uses uid_for, not /etc/passwd


class UidError(RuntimeError):
    """A uid cannot be given: two users would share one, or an override is not a valid uid."""


def overrides_from_env(env=None) -> dict[str, int]:
    env = os.environ if env is None else env
    raw = env.get(OVERRIDES_ENV, "").strip()
    if not raw:
        return {}
    try:
        table = json.loads(raw)
    except ValueError as e:
        raise UidError(f"{OVERRIDES_ENV} is not JSON ({e}): write an object such as {{\"alice\": 1000042}}") from None
    if not isinstance(table, dict):
        raise UidError(f"{OVERRIDES_ENV} must be a JSON object {{\"username\": uid}}")
    for name, uid in table.items():
        if not isinstance(uid, int) or isinstance(uid, bool) or not UID_BASE <= uid < UID_BASE + UID_SPAN:
            raise UidError(f"{OVERRIDES_ENV}: {name!r} -> {uid!r} is not a uid from {UID_BASE} to "
                           f"{UID_BASE + UID_SPAN - 1}")
    return table


def hashed_uid(username: str) -> int:
    digest = hashlib.sha256(username.encode("utf-8")).digest()
    return UID_BASE + int.from_bytes(digest[:8], "big") % UID_SPAN


def uid_for(username: str, overrides: dict[str, int] | None = None) -> int:
    """The uid of hub user ``username``: the override the admin set, else the hash."""
    table = overrides_from_env() if overrides is None else overrides
    return table.get(username, hashed_uid(username))


def collisions(names, overrides: dict[str, int] | None = None) -> dict[int, list[str]]:
    """Each uid that more than one of ``names`` would get, with those names (sorted)."""
    table = overrides_from_env() if overrides is None else overrides
    by_uid: dict[int, list[str]] = {}
    for name in sorted(set(names)):
        by_uid.setdefault(uid_for(name, table), []).append(name)
    return {uid: group for uid, group in by_uid.items() if len(group) > 1}


def _hub_usernames(spawner) -> list[str]:
    from jupyterhub import orm

    return [name for (name,) in spawner.user.db.query(orm.User.name)]


def spawner_uid(spawner) -> int:
    """KubeSpawner's ``uid`` (and ``fs_gid``): this user's uid, refused if another hub user has it too."""
    name = spawner.user.name
    table = overrides_from_env()
    uid = uid_for(name, table)
    shared = [n for n in collisions(_hub_usernames(spawner) + [name], table).get(uid, []) if n != name]
    if shared:
        raise UidError(f"{name!r} and {', '.join(map(repr, shared))} would run as the same uid {uid} and could read "
                       f"each other's submissions: give one of them another uid in {OVERRIDES_ENV} (hub and "
                       "single-user pods alike; docs/ZERO_TO_JUPYTERHUB.md)")
    return uid


def spawner_supplemental_gids(spawner) -> list[int]:
    """KubeSpawner's ``supplemental_gids``: the instructors' group for instructors, none for students."""
    return [INSTRUCTORS_GID] if any(g.name == INSTRUCTORS_GROUP for g in spawner.user.groups) else []


def spawner_username(spawner) -> str:
    """The pod's ``USER``: nbgrader's exchange names a submission after it, and the uid has no /etc/passwd entry."""
    return spawner.user.name
