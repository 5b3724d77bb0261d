"""``./course instructor lab``: JupyterLab for the instructor, on the grading course directory, with the formgrader.

nbgrader's formgrader reads the course directory's ``nbgrader_config.py`` (written by ``CourseDir.write_config``)
from the server's folder, so the server is started in ``<course>/``: Manage Assignments lists what
``./course instructor release`` released, Manage Submissions what ``collect`` filed and ``autograde`` graded, and
Manual Grading is where the written answers get their points and comments.

**No exchange.**  This course hands out bundles (``<course>/bundles/<assignment>.zip``) and collects LMS exports;
nbgrader's exchange is not used.  So that the formgrader neither warns about a missing exchange nor shows released
assignments as "draft", its exchange is a folder inside the course directory, ``<course>/exchange/``, whose
``outbound/`` mirrors ``<course>/release/`` each time the lab starts; no student ever reads it.  The exchange-based
student front-ends (Assignment List, Course List) are off in this lab (``<prefix>/etc/jupyter-instructor``, read
through ``JUPYTER_CONFIG_PATH`` by this server only); the Formgrader, Create Assignment and Validate stay.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from .coursedir import CourseDir

COURSE_ID = "ddpm-course"
CONFIG_DIR = Path(sys.prefix) / "etc" / "jupyter-instructor"
OFF_LABEXTENSIONS = ["@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list"]
OFF_SERVER_EXTENSIONS = ["nbgrader.server_extensions.course_list", "nbgrader.server_extensions.assignment_list"]
BANNER = """==> instructor lab on {root}: Nbgrader > Formgrader
    use it for:   Manual Grading (points and comments for the written answers), viewing submissions and scores
    use commands: ./course instructor release | collect | autograde | feedback | grades -- not the formgrader's
                  Generate, Release, Collect, Autograde or feedback buttons (docs/INSTRUCTORS.md, "The instructor lab")
    no exchange:  students get {root}/bundles/<assignment>.zip; {root}/exchange/ only mirrors release/ for the formgrader"""


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def write_lab_config(config_dir: Path = CONFIG_DIR) -> Path:
    """This lab's own Jupyter config folder: the exchange-based student front-ends and their server parts off."""
    _write_json(config_dir / "labconfig" / "page_config.json",
                {"disabledExtensions": {name: True for name in OFF_LABEXTENSIONS}})
    _write_json(config_dir / "jupyter_server_config.d" / "ddpm-instructor.json",
                {"ServerApp": {"jpserver_extensions": {name: False for name in OFF_SERVER_EXTENSIONS}}})
    return config_dir


def mirror_release(course: CourseDir) -> Path:
    """``<course>/exchange/<course id>/outbound/<assignment>/`` = ``<course>/release/<assignment>/``, so that the
    formgrader shows what ``release`` released as released; returns the exchange root."""
    outbound = course.root / "exchange" / COURSE_ID / "outbound"
    if outbound.exists():
        shutil.rmtree(outbound)
    outbound.mkdir(parents=True)
    for a in course.released_assignments():
        shutil.copytree(course.release / a, outbound / a, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return course.root / "exchange"


def lab_command(course: CourseDir, options: list[str]) -> tuple[list[str], dict]:
    """(argv, environment) of the instructor lab; run it in ``course.root``."""
    course.write_config()
    exchange = mirror_release(course)
    env = course.env()
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        p for p in (str(write_lab_config()), os.environ.get("JUPYTER_CONFIG_PATH")) if p)
    argv = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={course.root}",
            f"--CourseDirectory.course_id={COURSE_ID}", f"--Exchange.root={exchange}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    return argv + options, env


def instructor_lab(course: CourseDir, options: list[str]) -> None:
    """Replace this process with the instructor's JupyterLab (the CLI's last act)."""
    course.root.mkdir(parents=True, exist_ok=True)
    argv, env = lab_command(course, options)
    print(BANNER.format(root=course.root), flush=True)
    os.chdir(course.root)
    os.execve(argv[0], argv, env)
