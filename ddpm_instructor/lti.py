"""Grades back into the LMS through LTI 1.3 Assignment and Grade Services (``./course instructor grades --lti``).

The class hub (hub/auth.py) records each LTI launch in ``launches.json`` (:func:`record_launch`): the platform, each
hub user's LMS id (the id_token's ``sub``) and role, and for each assignment the AGS line item of the LMS assignment
it was launched from (the launch's custom parameter ``assignment=<name>``, else the resource link's title).

:func:`post_grades` then, for each assignment with a line item and each student the LMS launched:

1. gets an access token from the platform's token endpoint: OAuth2 client credentials with a JWT assertion signed
   by the tool's private key (the key whose public half was registered in the LMS), scope ``.../scope/score``;
2. POSTs the AGS score (``application/vnd.ims.lis.v1.score+json``) to ``<lineitem>/scores``: ``userId`` (the
   ``sub``), ``scoreGiven``, ``scoreMaximum``, ``activityProgress``, ``gradingProgress``, ``timestamp``.

A student with no submission gets no score (the LMS shows nothing, not a zero) unless ``zero_missing``; a submission
not autograded yet, or whose autograde failed, gets none either; one whose written answers still wait for the
formgrader is sent as ``PendingManual`` with the autograded points.  Library code: raises :class:`LtiError`.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InstructorError

AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
CUSTOM_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/custom"
RESOURCE_LINK_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/resource_link"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TIMEOUT_S = 30


class LtiError(InstructorError):
    """Grade passback cannot go on (no launches recorded, no key, the platform refused)."""


@dataclass
class Platform:
    issuer: str = ""
    client_id: str = ""
    token_url: str = ""


@dataclass
class LmsUser:
    sub: str
    role: str
    name: str = ""
    email: str = ""


@dataclass
class LineItem:
    url: str
    resource_link: str = ""
    title: str = ""


@dataclass
class Launches:
    platform: Platform = field(default_factory=Platform)
    users: dict = field(default_factory=dict)        # hub username -> LmsUser
    lineitems: dict = field(default_factory=dict)    # assignment -> LineItem

    @classmethod
    def load(cls, path: Path) -> "Launches":
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise LtiError(f"{path} does not exist: no one has launched the hub from the LMS yet (or give "
                           "--lti-state the hub's state folder)") from None
        except (OSError, ValueError) as e:
            raise LtiError(f"cannot read {path}: {e}") from None
        return cls(Platform(**raw.get("platform", {})),
                   {k: LmsUser(**v) for k, v in raw.get("users", {}).items()},
                   {k: LineItem(**v) for k, v in raw.get("lineitems", {}).items()})

    def save(self, path: Path) -> None:
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".launches-")
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2, sort_keys=True)
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)


def record_launch(path: Path, username: str, role: str, id_token: dict, issuer: str, client_id: str,
                  token_url: str) -> Launches:
    """Add one verified launch (the decoded id_token) to the launches file."""
    path = Path(path)
    book = Launches.load(path) if path.exists() else Launches()
    book.platform = Platform(issuer, client_id, token_url)
    book.users[username] = LmsUser(sub=str(id_token["sub"]), role=role, name=str(id_token.get("name", "")),
                                   email=str(id_token.get("email", "")))
    ags = id_token.get(AGS_CLAIM) or {}
    link = id_token.get(RESOURCE_LINK_CLAIM) or {}
    assignment = (id_token.get(CUSTOM_CLAIM) or {}).get("assignment") or link.get("title")
    if ags.get("lineitem") and assignment:
        book.lineitems[str(assignment)] = LineItem(str(ags["lineitem"]), str(link.get("id", "")),
                                                   str(link.get("title", "")))
    book.save(path)
    return book


@dataclass
class ScorePost:
    assignment: str
    student: str
    posted: bool
    detail: str                  # what was sent, or why nothing was
    payload: dict | None = None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def score_payload(score, sub: str, zero_missing: bool = False, timestamp: str | None = None) -> tuple[dict | None, str]:
    """(the AGS score for ``score`` (a grades.Score), or None, and why)."""
    base = {"userId": sub, "timestamp": timestamp or _now(), "scoreMaximum": score.max_score}
    if score.status == "missing":
        if not zero_missing:
            return None, "no submission: no score sent (--lti-zero-missing sends 0)"
        return {**base, "scoreGiven": 0, "activityProgress": "Initialized", "gradingProgress": "FullyGraded",
                "comment": "No submission."}, "no submission: 0 sent"
    if score.status != "graded":
        return None, f"{score.status}: no score sent yet"
    if score.pending:
        return {**base, "scoreGiven": score.total, "activityProgress": "Completed",
                "gradingProgress": "PendingManual"}, f"{score.total:g} so far, written answers pending"
    return {**base, "scoreGiven": score.total, "activityProgress": "Completed",
            "gradingProgress": "FullyGraded"}, f"{score.total:g}/{score.max_score:g}"


def client_assertion(platform: Platform, key_pem: bytes, now: int | None = None) -> str:
    import jwt    # PyJWT, installed with the hub extra

    now = int(time.time()) if now is None else now
    claims = {"iss": platform.client_id, "sub": platform.client_id, "aud": platform.token_url, "iat": now,
              "exp": now + 300, "jti": secrets.token_urlsafe(16)}
    return jwt.encode(claims, key_pem, algorithm="RS256", headers={"kid": key_id(key_pem)})


def key_id(key_pem: bytes) -> str:
    """The ``kid`` of the tool's key: a hash of its public half (also in the tool's JWKS, hub/jupyterhub_config.py)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_private_key(key_pem, password=None).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


def _request(url: str, data: bytes, headers: dict) -> dict:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            body = resp.read()
    except urllib.error.HTTPError as e:
        raise LtiError(f"{url} answered {e.code}: {e.read()[:300].decode('utf-8', 'replace')}") from None
    except (urllib.error.URLError, OSError) as e:
        raise LtiError(f"cannot reach {url}: {e}") from None
    return json.loads(body) if body.strip() else {}


def access_token(platform: Platform, key_pem: bytes) -> str:
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                                   "client_assertion": client_assertion(platform, key_pem),
                                   "scope": SCORE_SCOPE}).encode()
    got = _request(platform.token_url, form, {"Content-Type": "application/x-www-form-urlencoded"})
    if not got.get("access_token"):
        raise LtiError(f"{platform.token_url} gave no access_token: {got}")
    return got["access_token"]


def scores_url(lineitem: str) -> str:
    """``<lineitem>/scores``, the line item's own query string kept (as AGS says)."""
    parts = urllib.parse.urlsplit(lineitem)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def post_grades(course, launches_path: Path, key_path: Path, zero_missing: bool = False,
                assignments: list[str] | None = None) -> list[ScorePost]:
    """Post each launched student's score of each assignment that has a line item; returns one record per pair."""
    from .grades import submission_score

    book = Launches.load(launches_path)
    if not book.platform.token_url:
        raise LtiError(f"{launches_path} names no token endpoint (DDPM_LTI_TOKEN_URL when the hub ran)")
    try:
        key_pem = Path(key_path).read_bytes()
    except OSError as e:
        raise LtiError(f"cannot read the tool's private key {key_path}: {e}") from None
    wanted = assignments or sorted(book.lineitems)
    unknown = [a for a in wanted if a not in book.lineitems]
    if unknown:
        raise LtiError(f"no LMS line item recorded for {', '.join(unknown)}: launch the hub once from that "
                       "assignment in the LMS (custom parameter assignment=<name>)")
    students = {u: lms for u, lms in sorted(book.users.items()) if lms.role == "student"}
    token = None
    out = []
    with course.gradebook() as gb:
        known = {x.name for x in gb.assignments}
        absent = [a for a in wanted if a not in known]
        if absent:
            raise LtiError(f"{', '.join(absent)} not in the gradebook: release, collect and autograde it first")
        for a in wanted:
            for user, lms in students.items():
                score = submission_score(course, a, user, gb)     # "missing" when nothing was collected
                payload, why = score_payload(score, lms.sub, zero_missing)
                if payload is None:
                    out.append(ScorePost(a, user, False, why))
                    continue
                token = token or access_token(book.platform, key_pem)
                _request(scores_url(book.lineitems[a].url), json.dumps(payload).encode(),
                         {"Content-Type": SCORE_TYPE, "Authorization": f"Bearer {token}"})
                out.append(ScorePost(a, user, True, why, payload))
    return out
