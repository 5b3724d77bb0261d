"""The students' Python on the class hub: what a student's bundle holds, and the course venv's packages without the
course's own install.

The course's venv (``./course setup``) has the course as an editable install: its ``__editable__`` finder maps
``solutions`` and ``ddpm_instructor`` to the checkout, so a kernel of that venv imports the reference answers.  A
student's server on the hub runs another Python instead, made by :func:`build` (as root, at the hub's start) in
``<state>/student/`` (hub/settings.py), every file root's and world-readable:

    course/                 what a bundle holds (ddpm_instructor/bundle.py copies it the same way):
        tutorial_utils/     data, plots, self-checks
        solutions/          the modules graded nowhere and those of the stages declared public (``public.json`` of
                            the hub's course folder), never another: the same rule as a bundle's (``bundle_modules``)
        checkpoints/        the shipped weights (no answers: the notebooks load them)
        hub/exchange.py     the closed exchange's classes, which the student's Assignment List submits with (and
                            hub/uids.py, which it reads on Kubernetes)
    venv/                   a venv of the base Python, no packages of its own; ``ddpm-student.pth`` puts ``course/``
                            and the course venv's site-packages on its path as *plain paths*: Python runs the .pth
                            files of a site directory only (``site.addsitedir``), so the course venv's
                            ``__editable__`` finder is never installed and no second copy of PyTorch is needed
    venv/bin/jupyterhub-singleuser   the course venv's script, run by this Python
    share/jupyter/kernels/ddpm-course/   the course kernel, run by this Python
    environment             the server's environment as ``export`` lines (a container's start script reads it)

``python -m hub.student_env DEST [STAGE ...]`` makes it for the Kubernetes student image (hub/k8s/Dockerfile), with
the role labs of hub/labs.py in ``DEST/etc/``.

The checkout itself is closed to students by hub/checkout.py.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

from .settings import REPO

KERNEL_NAME = "ddpm-course"                     # the name ./course setup registers (course: KERNEL_NAME)
KERNEL_DISPLAY = "Python (DDPM course)"
PTH_NAME = "ddpm-student.pth"
SCRIPT = "jupyterhub-singleuser"
DIR_MODE, FILE_MODE = 0o755, 0o644


class StudentEnvError(RuntimeError):
    """The students' environment cannot be made from this course venv."""


@dataclass(frozen=True)
class StudentEnv:
    root: Path                 # <state>/student
    base_prefix: Path          # the course venv the heavy packages come from (sys.prefix of the hub)

    @property
    def course(self) -> Path:
        return self.root / "course"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def singleuser(self) -> Path:
        return self.venv / "bin" / SCRIPT

    @property
    def data_path(self) -> Path:
        """This environment's Jupyter data folder (its kernel), searched before the course venv's."""
        return self.root / "share" / "jupyter"

    def server_environment(self) -> dict[str, str]:
        """What a student's server needs besides its role config: the course venv's Jupyter config, data and
        JupyterLab assets (its server extensions, lab extensions, nbgrader's Validate settings), behind this
        environment's own kernel; no PYTHONPATH (the course's packages come from ``course/`` through the .pth)."""
        share = self.base_prefix / "share" / "jupyter"
        return {"JUPYTER_PATH": os.pathsep.join([str(self.data_path), str(share)]),
                "JUPYTERLAB_DIR": str(share / "lab"),
                "VIRTUAL_ENV": str(self.venv)}

    @property
    def environment_file(self) -> Path:
        """The same environment as shell assignments, for a container's start script (hub/k8s/start-singleuser.sh)."""
        return self.root / "environment"

    def environment_text(self, config_dir: Path | None = None) -> str:
        """``export NAME='value'`` lines: :meth:`server_environment`, this Python first on ``PATH``, and
        ``JUPYTER_CONFIG_PATH`` (``config_dir``, the student lab's, first, when there is one)."""
        import shlex

        config = ([str(config_dir)] if config_dir else []) + self.config_path_tail()
        names = {**self.server_environment(), "JUPYTER_CONFIG_PATH": os.pathsep.join(config),
                 "PATH": f"{self.python.parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin"}
        return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in names.items())

    def config_path_tail(self) -> list[str]:
        """The course venv's Jupyter config folder (server extensions enabled by their packages, Validate's
        settings), which the students' Python does not see as its own prefix."""
        return [str(self.base_prefix / "etc" / "jupyter")]


def _site_packages(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))


def _write(path: Path, text: str, mode: int = FILE_MODE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _fresh(path: Path) -> Path:
    """An empty ``path`` (what was there removed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.chmod(path, DIR_MODE)
    return path


def public_stages(course_root: Path) -> set[str]:
    """The stages the instructors declared public in the hub's course folder (``release --public``)."""
    from ddpm_instructor.bundle import public_stages as declared
    from ddpm_instructor.coursedir import CourseDir

    return declared(CourseDir(course_root, quiet=True))


def place_solutions(env: StudentEnv, public: set[str]) -> list[str]:
    """``course/solutions``: the modules a bundle may carry with these public stages (``bundle_modules``; no
    assignment's own stage is left out, since the hub serves every assignment).  Put in place with one rename of a
    symlink, so a running kernel never sees it half-written; returns the modules."""
    from ddpm_instructor.bundle import _copy_package, bundle_modules

    modules = bundle_modules("", public)
    name = ".solutions-" + "-".join(modules)
    target = env.course / name
    if not target.is_dir():
        tmp = env.course / f"{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        _copy_package(REPO / "solutions", tmp, only=modules)
        os.replace(tmp, target)
    link = env.course / "solutions"
    if not (link.is_symlink() and os.readlink(link) == name):
        tmp_link = env.course / ".solutions.link"
        if tmp_link.is_symlink() or tmp_link.exists():
            tmp_link.unlink()
        tmp_link.symlink_to(name)
        if link.exists() and not link.is_symlink():
            shutil.rmtree(link)
        os.replace(tmp_link, link)
    for old in env.course.glob(".solutions-*"):          # copies of earlier public sets
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return modules


def build(root: Path, course_root: Path | None, base_prefix: Path = Path(sys.prefix),
          public: set[str] | None = None) -> StudentEnv:
    """Make (or remake) the students' environment in ``root``; see the module's docstring.  The public stages are
    ``public``, else those declared in ``course_root``."""
    from ddpm_instructor.bundle import _copy_package

    base_site = _site_packages(base_prefix)
    if not (base_site / "jupyterhub").is_dir() or not (base_prefix / "bin" / SCRIPT).is_file():
        raise StudentEnvError(f"the course venv {base_prefix} has no JupyterHub: run ./course hub --setup-only")
    env = StudentEnv(root, base_prefix)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, DIR_MODE)
    env.course.mkdir(exist_ok=True)
    os.chmod(env.course, DIR_MODE)
    for name in ("tutorial_utils", "hub", "checkpoints"):
        _fresh(env.course / name)
    shutil.rmtree(env.course / "tutorial_utils")          # _copy_package makes its destination
    _copy_package(REPO / "tutorial_utils", env.course / "tutorial_utils")
    for name in ("__init__.py", "exchange.py", "uids.py"):
        shutil.copyfile(REPO / "hub" / name, env.course / "hub" / name)
        os.chmod(env.course / "hub" / name, FILE_MODE)
    for w in sorted((REPO / "checkpoints").glob("*")):
        if w.suffix in (".pt", ".json") and w.is_file():
            shutil.copyfile(w, env.course / "checkpoints" / w.name)
            os.chmod(env.course / "checkpoints" / w.name, FILE_MODE)
    place_solutions(env, public if public is not None else public_stages(course_root))

    # the venv: the base Python, no pip, nothing of its own; then the .pth with the two plain paths
    if env.venv.exists():
        shutil.rmtree(env.venv)
    venv.EnvBuilder(with_pip=False, symlinks=True, clear=True).create(env.venv)
    site = _site_packages(env.venv)
    _write(site / PTH_NAME, f"{env.course}\n{base_site}\n")
    script = (base_prefix / "bin" / SCRIPT).read_text().splitlines(keepends=True)
    _write(env.singleuser, f"#!{env.python}\n" + "".join(script[1:]), mode=0o755)
    _write(env.data_path / "kernels" / KERNEL_NAME / "kernel.json", json.dumps({
        "argv": [str(env.python), "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY, "language": "python", "metadata": {"debugger": True}}, indent=1) + "\n")
    _write(env.environment_file, env.environment_text())
    for d in [env.venv, *env.venv.rglob("*"), env.root / "share", *(env.root / "share").rglob("*")]:
        if d.is_dir() and not d.is_symlink():
            os.chmod(d, DIR_MODE)
    return env


def main(argv=None) -> int:
    """``python -m hub.student_env DEST [STAGE ...]``: the students' environment in DEST with those stages public
    (the Kubernetes student image, hub/k8s/Dockerfile, has no hub course folder to read them from)."""
    import argparse

    from ddpm_instructor.bundle import ASSIGNMENT_STAGES

    ap = argparse.ArgumentParser(prog="python -m hub.student_env", description=main.__doc__)
    ap.add_argument("dest", type=Path)
    ap.add_argument("public", nargs="*", help=f"public stages: {', '.join(sorted(ASSIGNMENT_STAGES))}")
    args = ap.parse_args(argv)
    unknown = set(args.public) - ASSIGNMENT_STAGES
    if unknown:
        ap.error(f"not a graded stage: {', '.join(sorted(unknown))}")
    env = build(args.dest.resolve(), None, public=set(args.public))
    # the role labs of the hub (hub/labs.py) for the pods, with the exchange and course of the hub's settings
    from . import labs, settings

    s = settings.load()
    dirs = labs.write_config_dirs(env.root / "etc", labs.ExchangeConfig(s.course_id, s.exchange, s.course_root))
    _write(env.environment_file, env.environment_text(dirs["student"]))
    print(f"students' environment in {env.root}: Python {env.python}, solutions "
          f"{', '.join(p.stem for p in sorted((env.course / 'solutions').glob('*.py')) if p.stem != '__init__')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
