"""What a student gets for one assignment: a folder and a zip, ready for an LMS or a JupyterHub.

    grading/bundles/<assignment>/                 grading/bundles/<assignment>.zip (the same, zipped)
      README.md                                    the set-up commands (download size first), MNIST offline
      requirements.txt                             what the notebooks need (PyTorch, JupyterLab, nbgrader's Validate)
      <notebook>.ipynb                             the student version (blanks, self-checks; no hidden tests)
      tutorial_utils/                              the student side of the course: data, plots, self-checks, and
                                                   lab.py, the set-up + JupyterLab of ``./course lab`` (same first screen)
      solutions/                                   reference code of the *public* stages only
      checkpoints/                                 the weights the notebook loads, no others (``used_weights``)

**The public rule.**  ``solutions`` is split by stage (``solutions.STAGES``).  A bundle carries the modules graded
nowhere (``helpers``, ``model``) and those of the stages the instructor has declared public
(``./course instructor release --public 02_forward_closed_form``, once that deadline has passed; remembered in
``<course>/public.json``), never the stage of the assignment itself.  A later notebook that needs an earlier stage
imports it from ``solutions``, so releasing it needs that stage public: ``release`` refuses otherwise and says which
stage to declare.  The grading kernel sees exactly the bundle's ``solutions`` (``SandboxKernelManager.bundle_dir``).

**Refused functions are absent.**  Where the per-blank decision refuses a public function that computes a blank of
this assignment in one call (``solutions.REFUSED``), the bundle ships its module with that function replaced by a
stub that only raises ``DelegationRefused`` with the decision's reason (``refuse_functions``): no line of the
original is in the file, so nothing the student's code does in the kernel brings it back.  Autograde and
``grade-one`` (Gradescope) grade with this bundle.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import zipfile
from pathlib import Path

import nbformat

import solutions

from tutorial_utils.checkpoints import CHECKPOINT_DIR, PRETRAINED
from tutorial_utils.data import MNIST_FILES
from tutorial_utils.judge import CLASSIFIER_PATH

from .coursedir import REPO, CourseDir
from .errors import InstructorError

# The README's commands (tests/test_browser.py runs exactly these).  PyTorch from its CPU-only index: the course
# needs no GPU, and PyPI's default Linux wheel pulls ~3 GB of CUDA libraries.
SETUP = """python3 -m venv .venv
.venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
.venv/bin/pip install -r requirements.txt
.venv/bin/python tutorial_utils/lab.py"""
# pyproject.toml's dependencies, and nbgrader for the Validate button (the course asks students to Validate)
REQUIREMENTS = ["torch>=2.2,<3", "torchvision>=0.17,<1", "numpy>=1.24", "matplotlib>=3.7", "seaborn>=0.12",
                "tqdm>=4.60", "jupyterlab>=4.0,<5", "ipykernel>=6.20", "ipywidgets>=8.0", "nbgrader>=0.9,<0.10"]
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


def _code_trees(nb):
    """The parsed code cells of a notebook (IPython magics and shell lines left out; unparsable cells skipped)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))
        try:
            yield ast.parse(src)
        except SyntaxError:
            continue


def imported_solution_names(nb) -> set[str]:
    """Names a notebook imports from ``solutions`` (``from solutions import a, b``)."""
    names = set()
    for tree in _code_trees(nb):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "solutions":
                names |= {a.name for a in node.names}
    return names


# the calls that load a shipped checkpoint by name (load_mine_or_pretrained falls back to it)
LOADERS = ("load_pretrained", "load_mine_or_pretrained")


def _loader_calls(nb, where: str):
    """``(call, checkpoint name)`` for each loader call in the notebook's code; raises when the name is not a string
    constant naming a shipped checkpoint (the bundle could not tell which weights, or which class, it needs)."""
    for tree in _code_trees(nb):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in LOADERS:
                arg = node.args[0] if node.args else None
                if not (isinstance(arg, ast.Constant) and arg.value in PRETRAINED):
                    raise InstructorError(
                        f"{where}: {getattr(node.func, 'id', getattr(node.func, 'attr', ''))}({ast.unparse(arg) if arg else ''}...) does not name a shipped "
                        f"checkpoint ({', '.join(sorted(PRETRAINED))}) as a string, so the bundle cannot tell which "
                        f"weights to carry: write the name itself, e.g. load_pretrained(\"unet_digit6\").")
                yield node, arg.value


def used_weights(nb, where: str = "the notebook") -> list[Path]:
    """The weight files a notebook loads, read from its code: ``load_pretrained("<name>", ...)`` or
    ``load_mine_or_pretrained("<name>", ...)`` -> the checkpoint ``<name>`` (``.pt`` and ``.json``), an import from
    ``tutorial_utils.judge`` -> the judge's classifier."""
    names = {name for _, name in _loader_calls(nb, where)}
    judge = any((isinstance(node, ast.ImportFrom) and node.module == "tutorial_utils.judge") or (
                 isinstance(node, ast.Import) and any(a.name == "tutorial_utils.judge" for a in node.names))
                for tree in _code_trees(nb) for node in ast.walk(tree))
    pts = [CHECKPOINT_DIR / f"{n}.pt" for n in sorted(names)] + ([CLASSIFIER_PATH] if judge else [])
    return [f for pt in pts for f in (pt, pt.with_suffix(".json"))]


def loaded_solution_classes(nb, where: str = "the notebook") -> dict[str, str]:
    """``{checkpoint: class}`` for each shipped checkpoint the notebook's code loads into the *reference* class:
    a loader call without ``model_class=`` builds the class its checkpoint was saved from (``PRETRAINED[name]
    ["class"]``, which ``load_pretrained`` checks against the ``.json``) out of ``solutions``, so the bundle must
    carry that class's module.  A call that passes ``model_class=`` loads into the notebook's own class instead."""
    out = {}
    for call, name in _loader_calls(nb, where):
        own = next((k.value for k in call.keywords if k.arg == "model_class"), None)
        if own is None or (isinstance(own, ast.Constant) and own.value is None):
            out[name] = PRETRAINED[name]["class"]
    return out


def _stage_fix(module: str, assignment: str, public: set[str]) -> str:
    stage = solutions.STAGES[module]
    if stage == assignment:
        return "a notebook cannot use the reference of its own assignment"
    missing = [solutions.STAGES[m] for m in [module] + solutions.REQUIRES.get(module, [])
               if solutions.STAGES[m] and solutions.STAGES[m] not in public]
    return ("declare that stage public once its deadline has passed: "
            + " ".join(f"--public {m}" for m in dict.fromkeys(missing or [stage])))


def check_releasable(assignment: str, notebooks: list[Path], public: set[str]) -> None:
    """Raise if a notebook of ``assignment`` imports reference code the bundle will not carry, or loads a shipped
    checkpoint into a reference class the bundle will not carry (``loaded_solution_classes``)."""
    modules = set(bundle_modules(assignment, public))
    problems = []
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        for name in sorted(imported_solution_names(nb)):
            module = solutions.MODULE_OF.get(name)
            if module is None:
                problems.append(f"{path.name} imports solutions.{name}, which does not exist")
            elif module not in modules:
                problems.append(f"{path.name} imports {name} from stage {solutions.STAGES[module]}: "
                                f"{_stage_fix(module, assignment, public)}")
        for checkpoint, cls in sorted(loaded_solution_classes(nb, path.name).items()):
            module = solutions.MODULE_OF.get(cls)
            if module is not None and module not in modules:
                problems.append(f"{path.name} loads the checkpoint {checkpoint!r} without model_class=, which builds "
                                f"solutions.{cls} of stage {solutions.STAGES[module]}: "
                                f"{_stage_fix(module, assignment, public)}")
    if problems:
        raise InstructorError(f"cannot release {assignment}:\n  " + "\n  ".join(problems))


# A bundle is read by the student and by the grading kernel's unprivileged uid, whatever the modes of the course it
# is built from (run_autograder closes the course on Gradescope: chmod -R go-rwx), so every copy gets these.
DIR_MODE, FILE_MODE = 0o755, 0o644


def _copy_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    os.chmod(dst, FILE_MODE)


def _copy_package(src: Path, dst: Path, only: list[str] | None = None) -> None:
    dst.mkdir(parents=True)
    os.chmod(dst, DIR_MODE)
    for p in sorted(src.iterdir()):
        if p.name == "__pycache__" or p.name.startswith("."):
            continue
        if only is not None and p.suffix == ".py" and p.stem != "__init__" and p.stem not in only:
            continue
        if p.is_file():
            _copy_file(p, dst / p.name)
        elif p.is_dir() and only is None:          # a subpackage (tutorial_utils.checks): the kernel sees only this copy
            _copy_package(p, dst / p.name)


def graded_kinds(notebooks: list[Path]) -> set[str]:
    """The probes (``Graded.kind``) of the graded tests in these notebooks (their nbgrader grade ids)."""
    from .graded import TESTS

    gids = {c.metadata.get("nbgrader", {}).get("grade_id") for nb in notebooks
            for c in nbformat.read(str(nb), as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata.get("nbgrader", {}).get("solution")}
    return {TESTS[g].kind for g in gids if g in TESTS}


def stub_function(source: str, name: str, reason: str) -> str:
    """``source`` (a module's text) with its top-level function ``name`` (decorators, docstring and body) replaced by
    a function of the same signature that only raises ``solutions.DelegationRefused`` saying ``reason``."""
    tree = ast.parse(source)
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name), None)
    if node is None:
        raise InstructorError(f"solutions.REFUSED names {name}, which its module does not define at top level.")
    message = (f"{name} is not part of this assignment's copy of the course: {reason}. Write the computation "
               f"yourself (see the notebook's text).")
    stub = ast.FunctionDef(
        name=name, args=node.args, decorator_list=[], returns=node.returns, type_params=[],
        body=[ast.Expr(ast.Constant(f"Not in this copy of the course (solutions.REFUSED): {reason}.")),
              ast.ImportFrom(module="solutions", names=[ast.alias("DelegationRefused")], level=0),
              ast.Raise(exc=ast.Call(ast.Name("DelegationRefused"), [ast.Constant(message)], []))])
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = source.splitlines(keepends=True)
    return "".join(lines[:first - 1]) + ast.unparse(ast.fix_missing_locations(stub)) + "\n" + "".join(lines[node.end_lineno:])


def refuse_functions(solutions_dir: Path, kinds: set[str]) -> list[str]:
    """Replace, in a bundle's ``solutions`` copy, each function that ``solutions.REFUSED`` refuses for one of these
    probes with its stub (``stub_function``); returns the qualified names stubbed (a module the bundle does not
    carry has nothing to stub)."""
    done = []
    for kind in sorted(kinds):
        for qualname, reason in solutions.REFUSED.get(kind, {}).items():
            module, _, name = qualname.partition(".")
            path = solutions_dir / f"{module}.py"
            if path.is_file():
                path.write_text(stub_function(path.read_text(), name, reason))
                done.append(qualname)
    return done


def bundle_solutions_dir(course: CourseDir, assignment: str) -> Path:
    return course.bundle_dir(assignment) / "solutions"


def readme(assignment: str, notebooks: list[Path], shown: list[str], weights: list[Path]) -> str:
    first = notebooks[0].name
    return f"""# {assignment}: denoising diffusion (DDPM) on MNIST

## Set up once (read this first: a large download)

You need Python 3.10 to 3.13. The set-up downloads about **0.4 GB** (PyTorch for the CPU, about 0.2 GB, then
JupyterLab, nbgrader and the plotting libraries) and takes **about 3 to 10 minutes** on a home connection; it uses
about 1.5 GB of disk, all of it inside this folder's `.venv/`. No GPU is needed. (Plain `pip install torch` on Linux
would fetch the CUDA build instead: about 3 GB to download, 6 GB on disk.)

```bash
{SETUP}
```

On Windows write `.venv\\Scripts\\pip` and `.venv\\Scripts\\python` for `.venv/bin/pip` and `.venv/bin/python`.

The last command opens JupyterLab on `{first}`. Next time only that one: `.venv/bin/python tutorial_utils/lab.py`.

## Work

Fill in the blanks that read `None`. The cell right after each blank checks your answer and says what is off:
run it before you go on. Before you hand in, press **Validate** in the notebook's toolbar: it runs the whole
notebook and lists every check that still fails. Hand in the notebook you worked in.

## MNIST without internet

A notebook that uses MNIST downloads it (about 12 MB) into `data/MNIST/raw/` beside the notebook on first use.
Offline, copy these four files into `data/MNIST/raw/` here, beside `{first}`, and run the cell again (it works
at once, no restart):

    {'  '.join(MNIST_FILES)}

Or set `DDPM_DATA_DIR` to a folder that holds `MNIST/raw/`: it is read when the kernel starts, so set it in the
shell before `.venv/bin/python tutorial_utils/lab.py` (restart JupyterLab if it is running).

## What is inside

* `tutorial_utils/`: data, plots and the self-checks the notebook imports; `lab.py` sets up and opens JupyterLab.
* `solutions/`: reference code of earlier stages ({', '.join(shown) if shown else 'none yet'}) and helpers the
  notebook imports; the answers of this assignment are yours to write.
* `checkpoints/`: {', '.join(f'`{w.name}`' for w in weights if w.suffix == '.pt') or 'none: this notebook loads no pretrained weights'}{', the weights the notebook loads, so a CPU is enough' if weights else ''}.
"""


def build_bundle(course: CourseDir, assignment: str) -> tuple[Path, Path]:
    """Write ``<course>/bundles/<assignment>/`` and ``<assignment>.zip`` from the released student version."""
    public = public_stages(course)
    notebooks = sorted((course.release / assignment).glob("*.ipynb"))
    if not notebooks:
        raise InstructorError(f"{assignment} has no released notebooks in {course.release / assignment}.")
    check_releasable(assignment, notebooks, public)
    weights = sorted({w for nb in notebooks for w in used_weights(nbformat.read(str(nb), as_version=4), nb.name)})
    missing = [w for w in weights if not w.is_file()]
    if missing:
        raise InstructorError(f"cannot bundle {assignment}: its notebook loads {', '.join(map(str, missing))}, "
                              f"which is missing (git checkout -- checkpoints/, or retrain it: docs/CHECKPOINTS.md).")
    dest = course.bundle_dir(assignment)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    os.chmod(dest, DIR_MODE)
    for nb in notebooks:
        _copy_file(nb, dest / nb.name)
    _copy_package(REPO / "tutorial_utils", dest / "tutorial_utils")
    _copy_package(REPO / "solutions", dest / "solutions", only=bundle_modules(assignment, public))
    refuse_functions(dest / "solutions", graded_kinds(notebooks))
    for w in weights:
        (dest / "checkpoints").mkdir(mode=DIR_MODE, exist_ok=True)
        _copy_file(w, dest / "checkpoints" / w.name)
    (dest / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    (dest / "README.md").write_text(readme(assignment, notebooks, sorted(s for s in public if s != assignment), weights))
    zpath = course.bundles / f"{assignment}.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(dest.rglob("*")):
            if p.is_file():
                zf.write(p, f"{assignment}/{p.relative_to(dest)}")
    return dest, zpath
