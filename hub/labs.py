"""What each user's server on the class hub reads: its Jupyter config folder and its nbgrader config.

Two folders, written by the hub's set-up into the hub's state folder (world-readable, root-owned), each read by a
server through ``JUPYTER_CONFIG_PATH`` (first on the path, so they win over the environment's):

    <state>/etc/student/      the student lab of ``./course lab`` (tutorial_utils/lab.py: the course kernel, Validate,
                              no Formgrader, Create Assignment or Course List) **plus** nbgrader's Assignment List,
                              which fetches from and submits to the exchange
    <state>/etc/instructor/   the instructor lab (ddpm_instructor/lab.py): the Formgrader, Create Assignment, Validate

A student's server runs the students' Python of :mod:`hub.student_env` (no ``solutions`` but the public ones, no
``ddpm_instructor``), an instructor's the course venv.  Both folders hold the same ``nbgrader_config.py``: the course id, the exchange root, and the exchange classes of
:mod:`hub.exchange` that keep students out of each other's submissions.  JupyterLab's defaults and Validate's settings are
the course venv's own (``./course setup`` wrote them into the venv); the students' environment reads them there.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# nbgrader's front-ends (tutorial_utils/lab.py lists them all) and which ones each role gets on the hub
STUDENT_OFF_LABEXTENSIONS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                             "@jupyter/nbgrader:course-list"]
STUDENT_SERVER_EXTENSIONS = {"nbgrader.server_extensions.formgrader": False,
                             "nbgrader.server_extensions.course_list": False,
                             "nbgrader.server_extensions.assignment_list": True,
                             "nbgrader.server_extensions.validate_assignment": True}
INSTRUCTOR_OFF_LABEXTENSIONS = ["@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list"]
INSTRUCTOR_SERVER_EXTENSIONS = {"nbgrader.server_extensions.formgrader": True,
                                "nbgrader.server_extensions.course_list": False,
                                "nbgrader.server_extensions.assignment_list": False,
                                "nbgrader.server_extensions.validate_assignment": True}
EXCHANGE_CLASSES = {"submit": "hub.exchange.PrivateExchangeSubmit",
                    "collect": "hub.exchange.OwnerCheckedExchangeCollect"}


@dataclass(frozen=True)
class ExchangeConfig:
    course_id: str
    exchange_root: Path
    course_root: Path          # the instructors' shared nbgrader course folder (source/, release/, submitted/ ...)


def nbgrader_config_text(cfg: ExchangeConfig) -> str:
    """The hub's ``nbgrader_config.py``: plain assignments of values (``json.dumps`` quotes them), no logic."""
    lines = ["# Written by hub/labs.py (./course hub): the class hub's course and exchange, for every user's server.",
             "c = get_config()  # noqa: F821",
             f"c.CourseDirectory.course_id = {json.dumps(cfg.course_id)}",
             f"c.CourseDirectory.root = {json.dumps(str(cfg.course_root))}",
             "c.CourseDirectory.groupshared = True   # several instructors share the course folder",
             f"c.Exchange.root = {json.dumps(str(cfg.exchange_root))}",
             "c.Exchange.path_includes_course = False"]
    lines += [f"c.ExchangeFactory.{name} = {json.dumps(cls)}" for name, cls in EXCHANGE_CLASSES.items()]
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    os.chmod(path, 0o644)


def student_labextensions(prefix: str | os.PathLike = sys.prefix) -> Path | None:
    """The student lab's own copy of nbgrader's lab extension, whose Validate dialog says what Validate checked
    (tutorial_utils/validate_dialog.py, made by ``./course setup`` in the course venv), or None if there is none."""
    from tutorial_utils import validate_dialog

    path = validate_dialog.student_labextensions(prefix)
    return path if (path / validate_dialog.EXTENSION / validate_dialog.SOURCE_STAMP).is_file() else None


def write_config_dirs(etc: Path, cfg: ExchangeConfig, labextensions: Path | None = None) -> dict[str, Path]:
    """Write ``etc/student`` and ``etc/instructor``; returns {role: folder}.  ``labextensions``: the students'
    extra lab extensions folder (default: the course venv's, :func:`student_labextensions`), found before the
    installed nbgrader, as in ``./course lab``; the instructors keep nbgrader's own."""
    labextensions = labextensions or student_labextensions()
    dirs = {}
    for role, off, server in (("student", STUDENT_OFF_LABEXTENSIONS, STUDENT_SERVER_EXTENSIONS),
                              ("instructor", INSTRUCTOR_OFF_LABEXTENSIONS, INSTRUCTOR_SERVER_EXTENSIONS)):
        d = etc / role
        _write(d / "labconfig" / "page_config.json",
               json.dumps({"disabledExtensions": {name: True for name in off}}, indent=2) + "\n")
        _write(d / "jupyter_server_config.d" / f"ddpm-hub-{role}.json",
               json.dumps({"ServerApp": {"jpserver_extensions": server}}, indent=2) + "\n")
        if role == "student" and labextensions:      # LabApp reads jupyter_lab_config, not the server's .d folder
            _write(d / "jupyter_lab_config.json",
                   json.dumps({"LabApp": {"extra_labextensions_path": [str(labextensions)]}}, indent=2) + "\n")
        _write(d / "nbgrader_config.py", nbgrader_config_text(cfg))
        for p in (etc, d, d / "labconfig", d / "jupyter_server_config.d"):
            os.chmod(p, 0o755)
        dirs[role] = d
    return dirs


def server_environment(config_dir: Path, repo: Path) -> dict[str, str]:
    """An instructor's server, on top of the spawner's environment: its config folder and the ``hub`` package (the
    exchange classes) on the import path; it runs the course venv (the instructors may read the checkout)."""
    return {"JUPYTER_CONFIG_PATH": str(config_dir), "PYTHONPATH": str(repo)}


def student_server_environment(config_dir: Path, env) -> dict[str, str]:
    """A student's server (``env``: a :class:`hub.student_env.StudentEnv`): its config folder first, then the course
    venv's; the students' Python finds the bundle's packages and the exchange classes itself (no PYTHONPATH)."""
    return {"JUPYTER_CONFIG_PATH": os.pathsep.join([str(config_dir), *env.config_path_tail()]),
            **env.server_environment()}
