"""The class hub's settings: environment variables, each with a default for a trial on one machine.

    DDPM_HUB_STATE        /srv/ddpm-hub             the hub's database, secrets, config folders, LTI records, and
                                                    the students' environment (student/: hub/student_env.py)
    DDPM_HUB_IP           127.0.0.1                 where the hub listens (0.0.0.0 behind a TLS proxy for a class)
    DDPM_HUB_PORT         8000                      the hub's public port (its API and proxy ports: DDPM_HUB_API_PORT,
                                                    DDPM_HUB_PROXY_API_PORT, default 8081 and 8001)
    DDPM_HUB_EXCHANGE     /srv/nbgrader/exchange    nbgrader's exchange root
    DDPM_HUB_COURSE_ID    ddpm-course               nbgrader's course id
    DDPM_HUB_INSTRUCTORS  (none)                    with the local login: usernames in the instructors group
    DDPM_HUB_AUTH         native                    native (NativeAuthenticator: sign up, an admin approves),
                                                    lti13 (from Canvas or Moodle), or dummy (tests only: one shared
                                                    password, DDPM_HUB_DUMMY_PASSWORD, and only on 127.0.0.1)
    DDPM_HUB_ADMINS       (none)                    hub admins (NativeAuthenticator: who approves sign-ups)
    DDPM_HUB_OS_GROUPS    ddpm                      prefix of the hub's two OS groups: <prefix>-instructors (reads the
                                                    exchange's submissions, shares the course folder) and
                                                    <prefix>-hub-users (every OS user the hub made; it starts servers
                                                    only as those)
    DDPM_LTI_ISSUER, DDPM_LTI_CLIENT_ID, DDPM_LTI_AUTHORIZE_URL, DDPM_LTI_JWKS_URL, DDPM_LTI_TOKEN_URL
                                                    the LMS's LTI 1.3 registration (lti13 only; docs/INSTRUCTORS.md)

Read once, into a :class:`HubSettings`; a bad value raises :class:`SettingsError` naming the variable.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUTH_KINDS = ("native", "lti13", "dummy")
INSTRUCTORS_GROUP = "instructors"          # the hub group; its members get the instructor lab
LTI_VARS = ("DDPM_LTI_ISSUER", "DDPM_LTI_CLIENT_ID", "DDPM_LTI_AUTHORIZE_URL", "DDPM_LTI_JWKS_URL", "DDPM_LTI_TOKEN_URL")


class SettingsError(ValueError):
    """A setting has a value the hub cannot use."""


@dataclass(frozen=True)
class LtiSettings:
    issuer: str
    client_id: str
    authorize_url: str
    jwks_url: str
    token_url: str


@dataclass(frozen=True)
class HubSettings:
    state: Path
    ip: str
    port: int
    api_port: int
    proxy_api_port: int
    exchange: Path
    course_id: str
    auth: str
    instructors: tuple[str, ...]
    admins: tuple[str, ...]
    dummy_password: str
    lti: LtiSettings | None
    os_groups: str = "ddpm"

    @property
    def os_instructors_group(self) -> str:
        return f"{self.os_groups}-instructors"

    @property
    def os_users_group(self) -> str:
        return f"{self.os_groups}-hub-users"

    @property
    def course_root(self) -> Path:
        """The instructors' shared nbgrader course folder."""
        return self.state / "course"

    @property
    def hub_dir(self) -> Path:
        """JupyterHub's database, cookie secret and proxy pid: root only."""
        return self.state / "hub"

    @property
    def etc(self) -> Path:
        return self.state / "etc"

    @property
    def lti_dir(self) -> Path:
        return self.state / "lti"

    @property
    def student_dir(self) -> Path:
        """The students' Python and the bundle's packages (hub/student_env.py): root's, world-readable."""
        return self.state / "student"


def _port(env, name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"{name}={raw!r} is not a port number (1-65535)")
    return int(raw)


def _names(env, name: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in env.get(name, "").split(",") if n.strip())


def load(env=None) -> HubSettings:
    env = os.environ if env is None else env
    auth = env.get("DDPM_HUB_AUTH", "native")
    if auth not in AUTH_KINDS:
        raise SettingsError(f"DDPM_HUB_AUTH={auth!r}: use one of {', '.join(AUTH_KINDS)}")
    ip = env.get("DDPM_HUB_IP", "127.0.0.1")
    try:
        loopback = ipaddress.ip_address(ip).is_loopback
    except ValueError:
        raise SettingsError(f"DDPM_HUB_IP={ip!r} is not an IP address") from None
    password = env.get("DDPM_HUB_DUMMY_PASSWORD", "")
    if auth == "dummy" and not (loopback and len(password) >= 8):
        raise SettingsError("DDPM_HUB_AUTH=dummy (one shared password, for tests) needs DDPM_HUB_IP on loopback and "
                            "DDPM_HUB_DUMMY_PASSWORD of 8 characters or more; for a trial use native")
    lti = None
    if auth == "lti13":
        missing = [v for v in LTI_VARS if not env.get(v)]
        if missing:
            raise SettingsError(f"DDPM_HUB_AUTH=lti13 needs {', '.join(missing)} (your LMS shows them when you "
                                "register the tool; docs/INSTRUCTORS.md, 'Run it on JupyterHub')")
        lti = LtiSettings(*(env[v] for v in LTI_VARS))
    os_groups = env.get("DDPM_HUB_OS_GROUPS", "ddpm")
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", os_groups):
        raise SettingsError(f"DDPM_HUB_OS_GROUPS={os_groups!r}: lower-case letters, digits and '-', at most 16")
    course_id = env.get("DDPM_HUB_COURSE_ID", "ddpm-course")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", course_id):
        raise SettingsError(f"DDPM_HUB_COURSE_ID={course_id!r}: letters, digits, '.', '_' and '-' only")
    return HubSettings(
        state=Path(env.get("DDPM_HUB_STATE", "/srv/ddpm-hub")).resolve(), ip=ip,
        port=_port(env, "DDPM_HUB_PORT", 8000), api_port=_port(env, "DDPM_HUB_API_PORT", 8081),
        proxy_api_port=_port(env, "DDPM_HUB_PROXY_API_PORT", 8001),
        exchange=Path(env.get("DDPM_HUB_EXCHANGE", "/srv/nbgrader/exchange")).resolve(), course_id=course_id,
        auth=auth, instructors=_names(env, "DDPM_HUB_INSTRUCTORS"), admins=_names(env, "DDPM_HUB_ADMINS"),
        dummy_password=password, lti=lti, os_groups=os_groups)
