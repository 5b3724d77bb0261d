"""The student's JupyterLab: set it up once, then open it on the first notebook.

    python tutorial_utils/lab.py [FOLDER] [JUPYTER LAB OPTIONS]   # a bundle's README; `./course lab` (FOLDER = workspace/)
    python tutorial_utils/lab.py --setup-only                     # `./course setup`

(run as a file, not with ``-m``: that would import the package, PyTorch included, just to start a server).

The set-up writes into this Python's environment (``sys.prefix``: the course's or the bundle's ``.venv``), never into
the student's home, so a student's own Jupyter settings still win:

    share/jupyter/kernels/ddpm-course/          the course kernel, shown as "Python (DDPM course)"
    share/jupyter/lab/settings/overrides.json   no "official Jupyter news?" pop-up, no update check
    etc/jupyter/nbgrader_config.py              nbgrader's Validate reports every failing cell, self-checks included
                                                and its failure message says what Validate checked and what it did not
    etc/jupyter-student/                        read only by the lab this module opens (``JUPYTER_CONFIG_PATH``):
        labconfig/page_config.json                nbgrader's instructor front-ends off (Formgrader, Create Assignment,
        jupyter_server_config.d/ddpm-student.json  Course List, Assignment List, the Nbgrader menu that held them) and
                                                    their server parts; the Validate button stays
    share/jupyter-student/labextensions/        read only by that lab too (an extra extensions path): nbgrader's lab
                                                extension with Validate's dialog saying what it checked and what it
                                                did not (tutorial_utils/validate_dialog.py)

The last two are what nbgrader documents as ``jupyter labextension disable @jupyter/nbgrader:formgrader`` and
``jupyter server extension disable nbgrader.server_extensions.formgrader`` (and so on), written into a folder of their
own: the instructor's lab (``./course instructor lab``), started from the same environment, keeps the formgrader.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import validate_dialog  # its sibling (this file runs as a file, so its folder is on the path): no package import

KERNEL_NAME = "ddpm-course"
KERNEL_DISPLAY_NAME = "Python (DDPM course)"
STUDENT_CONFIG = "jupyter-student"       # <prefix>/etc/<this>
# nbgrader's front-end plugins and server extensions a student has no use for (nbgrader's installation guide), and
# its "Nbgrader" menu, which would be left empty
INSTRUCTOR_LABEXTENSIONS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                            "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:assignment-list",
                            "@jupyter/nbgrader:menu"]
INSTRUCTOR_SERVER_EXTENSIONS = ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list",
                                "nbgrader.server_extensions.assignment_list"]
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
NBGRADER_CONFIG = """# Written by tutorial_utils/lab.py (`./course setup`, a bundle's set-up).  nbgrader's Validate reports every
# failing cell, the self-checks included: the graded tests are hidden in the student versions, so without it an
# untouched notebook "passes".
c = get_config()  # noqa: F821
c.Validator.validate_all = True
# What `nbgrader validate` prints above the failing cells: what Validate checked and what it did not.
c.Validator.failed_warning = (
    "VALIDATE LISTS {num_failed} CELL(S) BELOW. Validate ran your notebook from the top in a fresh kernel: it "
    "reports every cell that raised an error, every self-check that failed, and every written answer still "
    "empty (YOUR ANSWER HERE). It does not run the hidden tests that grade your code, and it does not read "
    "your written answers: those are graded after you hand the notebook in.\\n"
)
c.Validator.changed_warning = (
    "THE CONTENTS OF {num_changed} READ-ONLY CELL(S) HAVE CHANGED (listed below). The grader puts back the "
    "original cells when it grades, so your changes there do not count: undo them before you hand in.\\n"
)
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def _json(data) -> str:
    return json.dumps(data, indent=2) + "\n"


def student_config_dir(prefix: str | os.PathLike = sys.prefix) -> Path:
    return Path(prefix) / "etc" / STUDENT_CONFIG


def setup(prefix: str | os.PathLike = sys.prefix) -> Path:
    """Write the kernel, the settings defaults, nbgrader's Validate config and the student lab's config into
    ``prefix``; returns the student lab's config folder.  Idempotent: unchanged files are not rewritten."""
    from ipykernel.kernelspec import install

    prefix = Path(prefix)
    install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=str(prefix))
    _write(prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json", _json(LAB_OVERRIDES))
    _write(prefix / "etc" / "jupyter" / "nbgrader_config.py", NBGRADER_CONFIG)
    student = student_config_dir(prefix)
    _write(student / "labconfig" / "page_config.json",
           _json({"disabledExtensions": {name: True for name in INSTRUCTOR_LABEXTENSIONS}}))
    _write(student / "jupyter_server_config.d" / "ddpm-student.json",
           _json({"ServerApp": {"jpserver_extensions": {name: False for name in INSTRUCTOR_SERVER_EXTENSIONS}}}))
    validate_dialog.install(prefix)          # last: it raises DialogPatchError on an nbgrader it does not know
    return student


def first_notebook(folder: Path) -> str | None:
    """The notebook the lab opens on: the first ``*.ipynb`` in ``folder`` (a bundle), else in its sub-folders
    (the workspace, one folder per assignment); as a path relative to ``folder``."""
    for pattern in ("*.ipynb", "*/*.ipynb"):
        found = sorted(p for p in folder.glob(pattern) if ".ipynb_checkpoints" not in p.parts)
        if found:
            return found[0].relative_to(folder).as_posix()
    return None


def lab_command(folder: Path, options: list[str]) -> tuple[list[str], dict]:
    """(argv, environment) of the student lab on ``folder``."""
    student = student_config_dir()
    env = dict(os.environ)
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in (str(student), env.get("JUPYTER_CONFIG_PATH")) if p)
    argv = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}"]
    first = first_notebook(folder)
    if first:
        argv.append(f"--LabApp.default_url=/lab/tree/{first}")
    extensions = validate_dialog.student_labextensions(sys.prefix)
    if (extensions / validate_dialog.EXTENSION / validate_dialog.SOURCE_STAMP).is_file():
        argv.append(f"--LabApp.extra_labextensions_path={extensions}")     # found before the installed nbgrader
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")          # containers and CI machines often run as root
    return argv + options, env


def _setup_or_warn() -> None:
    try:
        setup()
    except validate_dialog.DialogPatchError as e:      # the lab still works, with nbgrader's own Validate dialog
        print(f"warning: {e}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--setup-only"]:
        _setup_or_warn()
        return
    folder = Path(args.pop(0) if args and not args[0].startswith("-") else ".").resolve()
    if not folder.is_dir():
        sys.exit(f"error: {folder} is not a folder; give the folder that holds the notebooks.")
    _setup_or_warn()
    argv_, env = lab_command(folder, args)
    os.chdir(folder)      # nbgrader's Validate reads nbgrader_config.py from the server's folder too
    print(f"==> JupyterLab on {folder}" + (f", opening {first_notebook(folder)}" if first_notebook(folder) else ""),
          flush=True)
    os.execve(argv_[0], argv_, env)


if __name__ == "__main__":
    main()
