"""What the hub does before it starts a user's server (``Spawner.pre_spawn_hook``) and once at start-up.

:func:`prepare` (at hub start, as root): the OS groups, the exchange (hub/exchange.py), the instructors' shared
course folder, the role config folders (hub/labs.py) and, with LTI, the tool's key pair.

:func:`pre_spawn` (each server start): the user's OS account (hub/users.py), their OS groups following their hub
group, and the server's environment and folder:

    student      the student lab + Assignment List, in their home (fetched assignments land there), run by the
                 students' Python (hub/student_env.py: a bundle's packages, no reference answers, no grader)
    instructor   the instructor lab (Formgrader) in the shared course folder, in the instructors' OS group, run by
                 the course venv

At start it also closes the checkout to everyone but root and the instructors (hub/checkout.py).
"""
from __future__ import annotations

import grp
import json
import os
import sys
from pathlib import Path

from . import labs, student_env, users
from .checkout import close_checkout
from .exchange import prepare_exchange
from .settings import INSTRUCTORS_GROUP, REPO, HubSettings


def role_of(user) -> str:
    return "instructor" if any(g.name == INSTRUCTORS_GROUP for g in user.groups) else "student"


def prepare(s: HubSettings) -> dict[str, Path]:
    """Everything the hub needs on disk before it starts; returns the role config folders."""
    bad = users.unreachable_python()
    if bad:
        raise users.UserError(f"students cannot run this Python ({sys.executable}, really "
                              f"{os.path.realpath(sys.executable)}): other users cannot enter "
                              f"{', '.join(map(str, bad))}. Make the course's venv from a Python every user can "
                              "run (e.g. /usr/bin/python3, or one under /opt), or open those folders (chmod o+x)")
    users.ensure_group(s.os_users_group)
    gid = users.ensure_group(s.os_instructors_group)
    s.state.mkdir(parents=True, exist_ok=True)
    os.chmod(s.state, 0o755)
    s.hub_dir.mkdir(exist_ok=True)
    os.chown(s.hub_dir, 0, 0)
    os.chmod(s.hub_dir, 0o700)
    prepare_exchange(s.exchange, s.course_id, s.os_instructors_group)
    s.course_root.mkdir(exist_ok=True)
    os.chown(s.course_root, 0, gid)
    os.chmod(s.course_root, 0o2770)
    student_env.build(s.student_dir, s.course_root)
    close_checkout(REPO, gid, keep=[Path(sys.prefix), s.state, s.exchange])
    if s.lti is not None:
        s.lti_dir.mkdir(exist_ok=True)
        os.chown(s.lti_dir, 0, gid)
        os.chmod(s.lti_dir, 0o2750)
        write_tool_key(s.lti_dir, gid)
    return labs.write_config_dirs(s.etc, labs.ExchangeConfig(s.course_id, s.exchange, s.course_root))


def write_tool_key(lti_dir: Path, gid: int) -> Path:
    """The tool's RSA key for grade passback (``tool_key.pem``, 0640, root and the instructors' OS group) and its public JWKS
    (``tool_jwks.json``, to register in the LMS); made once."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    from ddpm_instructor.lti import key_id

    key_path = lti_dir / "tool_key.pem"
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    os.chown(key_path, 0, gid)
    os.chmod(key_path, 0o640)
    pem = key_path.read_bytes()
    public = serialization.load_pem_private_key(pem, password=None).public_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(public))
    jwk.update({"kid": key_id(pem), "alg": "RS256", "use": "sig"})
    (lti_dir / "tool_jwks.json").write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    os.chmod(lti_dir / "tool_jwks.json", 0o644)
    return key_path


def pre_spawn(spawner, s: HubSettings, config_dirs: dict[str, Path]) -> None:
    name = spawner.user.name
    role = role_of(spawner.user)
    pw = users.ensure_user(name, s.os_users_group)
    users.set_member(name, s.os_instructors_group, role == "instructor")
    if role == "student":
        env = student_env.StudentEnv(s.student_dir, Path(sys.prefix))
        student_env.place_solutions(env, student_env.public_stages(s.course_root))   # stages made public since
        spawner.cmd = [str(env.singleuser)]
        spawner.environment.update(labs.student_server_environment(config_dirs[role], env))
        bin_dir = env.python.parent
    else:
        spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
        spawner.environment.update(labs.server_environment(config_dirs[role], REPO))
        bin_dir = Path(sys.executable).parent
    spawner.environment["PATH"] = os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"])
    spawner.notebook_dir = str(s.course_root if role == "instructor" else pw.pw_dir)
    spawner.log.info("starting %s's server as OS user %s (%s lab, groups %s)", name, pw.pw_name, role,
                     [g.gr_name for g in grp.getgrall() if name in g.gr_mem])
