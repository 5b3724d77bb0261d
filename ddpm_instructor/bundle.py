"""What a student gets for one assignment: a folder and a zip, ready for an LMS or a JupyterHub.

    grading/bundles/<assignment>/                 grading/bundles/<assignment>.zip (the same, zipped)
      README.md                                    the two set-up commands and what is inside
      requirements.txt                             what the notebooks need (PyTorch, JupyterLab, ...)
      <notebook>.ipynb                             the student version (blanks, self-checks; no hidden tests)
      tutorial_utils/                              the student side of the course: data, plots, self-checks
      solutions/                                   reference code of the *public* stages only
      checkpoints/                                 the pretrained weights

**The public rule.**  ``solutions`` is split by stage (``solutions.STAGES``).  A bundle carries the modules graded
nowhere (``helpers``, ``model``) and those of the stages the instructor has declared public
(``./course instructor release --public 02_forward_closed_form``, once that deadline has passed; remembered in
``<course>/public.json``), never the stage of the assignment itself.  A later notebook that needs an earlier stage
imports it from ``solutions``, so releasing it needs that stage public: ``release`` refuses otherwise and says which
stage to declare.  The grading kernel sees exactly the bundle's ``solutions`` (``SandboxKernelManager.solutions_dir``).
"""
from __future__ import annotations

import ast
import json
import shutil
import zipfile
from pathlib import Path

import nbformat

import solutions

from .coursedir import REPO, CourseDir
from .errors import InstructorError

SETUP = """python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
.venv/bin/jupyter lab"""
REQUIREMENTS = ["torch>=2.2,<3", "torchvision>=0.17,<1", "numpy>=1.24", "matplotlib>=3.7", "seaborn>=0.12",
                "tqdm>=4.60", "jupyterlab>=4.0,<5", "ipykernel>=6.20", "ipywidgets>=8.0"]
ASSIGNMENT_STAGES = {stage for stage in solutions.STAGES.values() if stage}


def public_stages(course: CourseDir) -> set[str]:
    p = course.root / "public.json"
    try:
        return set(json.loads(p.read_text()))
    except (OSError, ValueError):
        return set()


def declare_public(course: CourseDir, stages) -> set[str]:
    unknown = set(stages) - ASSIGNMENT_STAGES
    if unknown:
        raise InstructorError(f"--public {', '.join(sorted(unknown))}: not a graded stage; the stages are "
                              f"{', '.join(sorted(ASSIGNMENT_STAGES))}.")
    now = public_stages(course) | set(stages)
    course.root.mkdir(parents=True, exist_ok=True)
    (course.root / "public.json").write_text(json.dumps(sorted(now), indent=1))
    return now


def bundle_modules(assignment: str, public: set[str]) -> list[str]:
    """The ``solutions`` modules a bundle of ``assignment`` carries: ungraded ones and public stages, never its own,
    and never one that needs a module the bundle does not carry (a later stage built on this assignment's)."""
    modules = {m for m, stage in solutions.STAGES.items() if stage is None or (stage in public and stage != assignment)}
    while True:
        broken = {m for m in modules if any(need not in modules for need in solutions.REQUIRES.get(m, []))}
        if not broken:
            return [m for m in solutions.STAGES if m in modules]
        modules -= broken


def imported_solution_names(nb) -> set[str]:
    """Names a notebook imports from ``solutions`` (``from solutions import a, b``)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "solutions":
                names |= {a.name for a in node.names}
    return names


def check_releasable(assignment: str, notebooks: list[Path], public: set[str]) -> None:
    """Raise if a notebook of ``assignment`` imports reference code the bundle will not carry."""
    modules = set(bundle_modules(assignment, public))
    problems = []
    for path in notebooks:
        for name in sorted(imported_solution_names(nbformat.read(str(path), as_version=4))):
            module = solutions.MODULE_OF.get(name)
            if module is None:
                problems.append(f"{path.name} imports solutions.{name}, which does not exist")
            elif module not in modules:
                stage = solutions.STAGES[module]
                missing = [solutions.STAGES[m] for m in [module] + solutions.REQUIRES.get(module, [])
                           if solutions.STAGES[m] and solutions.STAGES[m] not in public]
                fix = ("a notebook cannot use the reference of its own assignment" if stage == assignment else
                       "declare that stage public once its deadline has passed: "
                       + " ".join(f"--public {m}" for m in dict.fromkeys(missing or [stage])))
                problems.append(f"{path.name} imports {name} from stage {stage}: {fix}")
    if problems:
        raise InstructorError(f"cannot release {assignment}:\n  " + "\n  ".join(problems))


def _copy_package(src: Path, dst: Path, only: list[str] | None = None) -> None:
    dst.mkdir(parents=True)
    for p in sorted(src.iterdir()):
        if p.name == "__pycache__" or p.name.startswith("."):
            continue
        if only is not None and p.suffix == ".py" and p.stem != "__init__" and p.stem not in only:
            continue
        if p.is_file():
            shutil.copy2(p, dst / p.name)


def bundle_solutions_dir(course: CourseDir, assignment: str) -> Path:
    return course.bundles / assignment / "solutions"


def build_bundle(course: CourseDir, assignment: str) -> tuple[Path, Path]:
    """Write ``<course>/bundles/<assignment>/`` and ``<assignment>.zip`` from the released student version."""
    public = public_stages(course)
    notebooks = sorted((course.release / assignment).glob("*.ipynb"))
    if not notebooks:
        raise InstructorError(f"{assignment} has no released notebooks in {course.release / assignment}.")
    check_releasable(assignment, notebooks, public)
    dest = course.bundles / assignment
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for nb in notebooks:
        shutil.copy2(nb, dest / nb.name)
    modules = bundle_modules(assignment, public)
    _copy_package(REPO / "tutorial_utils", dest / "tutorial_utils")
    _copy_package(REPO / "solutions", dest / "solutions", only=modules)
    (dest / "checkpoints").mkdir()
    for p in sorted((REPO / "checkpoints").glob("*")):
        if p.suffix in (".pt", ".json"):
            shutil.copy2(p, dest / "checkpoints" / p.name)
    if (REPO / "benchmarks" / "mnist_classifier.pt").is_file():     # the judge of notebook 7 (tutorial_utils.judge)
        (dest / "benchmarks").mkdir()
        shutil.copy2(REPO / "benchmarks" / "mnist_classifier.pt", dest / "benchmarks" / "mnist_classifier.pt")
    (dest / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    shown = sorted(s for s in public if s != assignment)
    (dest / "README.md").write_text(f"""# {assignment}: denoising diffusion (DDPM) on MNIST

Set up once, then open the notebook:

```bash
{SETUP}
```

Open {', '.join(f'`{n.name}`' for n in notebooks)} and fill in the blanks that read `None`. The cell right after
each blank checks your answer and says what is off. Run it before you go on. Hand in the notebook you worked in.

* `tutorial_utils/`: data, plots and the self-checks the notebook imports.
* `solutions/`: reference code of earlier stages ({', '.join(shown) if shown else 'none yet'}) and helpers the
  notebook imports; the answers of this assignment are yours to write.
* `checkpoints/`: pretrained weights, so a CPU is enough.

MNIST is downloaded to `data/` on first use; offline, put the four `*-ubyte` files in `<folder>/MNIST/raw/` and
set `DDPM_DATA_DIR=<folder>`.
""")
    zpath = course.bundles / f"{assignment}.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(dest.rglob("*")):
            if p.is_file():
                zf.write(p, f"{assignment}/{p.relative_to(dest)}")
    return dest, zpath
