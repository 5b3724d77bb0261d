"""Records a hostile class forges, graded end to end: release, collect, autograde in the sandbox, grades CSV -- and
the same forgeries through Gradescope's path (``ddpm_instructor.gradescope.grade_one``).

Each submission gets the grade a fair grader gives it, computed here from the points table and the blanks it
really answered, never copied from the grader's output:

* a probe patched so the schedule's record holds one entry instead of four (a short list);
* ``submit`` replaced so that no real record is shown, and forged ones (right fields, right shapes, values not
  computed by any answer) are shown instead;
* an answer function that, when called, patches ``torch.save`` to empty the lists of every record saved after it;
* an answer function that empties the probe's argument list through its caller's frames;
* notebook 4: a loop whose x_t blank zeroes the draws (t = 0, ε = 0, x_t = x_0), its other blanks as handed out:
  x_t fails against the grader's draws; the pred_noise and loss lines are right on the loop's own values (7 of 10);
* all of it at once (``torch.save`` patched, then ``submit`` replaced after a right ``q_sample``), also through
  ``grade_one``;
* a cell before any graded test that lists the grader's inputs folder and, if it saw anything, makes the schedule
  wrong: full marks, because a test's inputs exist only while its own cell runs.

And, cheaply, without autograde (``tests/kernel_harness.py`` runs the cells with only the bundle importable and
``graded.judge_outputs`` judges them): answers the kernel could reach -- notebook 4's blanks left None with the
probe's record class patched, notebook 5 through ``reverse_sde_step``, notebook 8 through stage 07's ``_model_eps``,
notebook 6's embedding width read from the grader's inputs -- each after a control that earns every blank.

Runtime: about 1 minute on an idle 2-core machine (six notebook-2 submissions and one of notebook 4 in one
autograde, one notebook-2 submission through grade_one); several times that on a busy one.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor import autograde as ag
from ddpm_instructor import collect as col
from ddpm_instructor import grades as gr
from ddpm_instructor import release as rel
from ddpm_instructor.coursedir import CourseDir as Course
from test_instructor import A, REPO, SANDBOX_PROBLEM, SCHED, _reference_sources, build_submission

NB4 = "04_training"
SANDBOX = "off" if SANDBOX_PROBLEM else "bwrap"
# the schedule blank left as handed out, but its function, when called, does something to the grader's machinery
SCHED_NONE = "return None"
PATCH_SAVE = """import torch
    if not getattr(torch.save, "empties_lists", False):
        real_save = torch.save
        def save(obj, f, *args, **kwargs):
            record = obj.get("record") if isinstance(obj, dict) else None
            for key, value in (record or {}).items():
                if isinstance(value, list):
                    record[key] = []
            return real_save(obj, f, *args, **kwargs)
        save.empties_lists = True
        torch.save = save
    return None"""
EMPTY_CALLERS_ARGS = """import sys
    frame = sys._getframe(1)
    for _ in range(3):                  # up to the probe that called this function
        for value in list(frame.f_locals.values()):
            if isinstance(value, dict) and isinstance(value.get("args"), list):
                value["args"].clear()
            elif isinstance(value, list) and value and isinstance(value[0], (list, tuple)):
                value.clear()
        frame = frame.f_back or frame
    return None"""
SHORT_PROBE = """from tutorial_utils.checks.diffusion import ScheduleRecord
_real_probe = ScheduleRecord.probe
ScheduleRecord.probe = classmethod(lambda cls, fn, inputs: cls(*[v[:1] for v in vars(_real_probe(fn, inputs)).values()]))"""
FORGER = """import json, os, torch
import tutorial_utils.probes as p
from tutorial_utils.checks import RECORDS

def forged_submit(grade_id, obj):
    spec = torch.load(os.path.join(os.environ["DDPM_GRADER_INPUTS"], grade_id + ".pt"), weights_only=True)
    cls, inputs = RECORDS[spec["probe"]], spec["inputs"]
    fields = {}
    for name, s in cls.spec(inputs).items():          # the declared fields, every tensor of the declared shape
        one = lambda s: torch.zeros(s.shape) if type(s).__name__ == "Obs" else ("" if type(s).__name__ == "Text" else 0)
        fields[name] = [one(x) for x in s] if isinstance(s, list) else one(s)
    if "x0" in inputs:                                 # x_t "computed" with no noise at all
        fields.update(out=inputs["x0"].clone(), sqrt_alpha_bar=torch.ones(len(inputs["t"]), 1, 1, 1))
    from IPython.display import display
    display({p.RECORD_MIME: p.encode(grade_id, cls.kind, fields), "text/plain": "forged"}, raw=True)

p.submit = forged_submit"""

# a cell before any graded test lists the grader's inputs folder; what it saw goes into the answer a test then
# judges: anything seen makes the schedule wrong, so full marks mean the folder was empty before its tests ran
READS_INPUTS_EARLY = """import os
_SEEN = sorted(os.listdir(os.environ["DDPM_GRADER_INPUTS"]))
if _SEEN:
    _right = linear_beta_schedule
    linear_beta_schedule = lambda *a, **k: _right(*a, **k) * 0 + len(_SEEN)"""

# student -> (assignment, blanks answered right, how the submission is made)
CLASS = {
    "f01-short-list": (A, {"sab", "somab", "ret"}, {"edit": {SCHED: SCHED_NONE}, "add_after": ("linear_beta_schedule", SHORT_PROBE)}),
    "f02-forged-records": (A, set(), {"blank": True, "add_after": ("linear_beta_schedule", FORGER)}),
    "f03-patches-torch-save": (A, {"sab", "somab", "ret"}, {"edit": {SCHED: PATCH_SAVE}}),
    "f04-empties-probe-args": (A, set(), {"blank": True, "edit_blank": {SCHED_NONE: EMPTY_CALLERS_ARGS}}),
    "f05-zeroes-draws": (NB4, {"loss_fn", "pred_noise", "loss"}, {"edit": {"x_t = q_sample(x_0, t, noise)": "t, noise, x_t = 0 * t, 0 * noise, x_0"}}),
    # q_sample answered right, but its records are forged: the grader never saw that code run on its inputs
    "f06-every-forgery": (A, set(), {"edit": {SCHED: PATCH_SAVE}, "add_after": ("q_sample", FORGER)}),
    # the grader's inputs exist only while their own graded cell runs (ddpm_instructor.execute)
    "f07-reads-inputs-early": (A, {"schedule", "sab", "somab", "ret"},
                               {"add_after": ("linear_beta_schedule", READS_INPUTS_EARLY)}),
}
GRADESCOPE = ["f06-every-forgery"]
# which blank each graded test needs (a test passes only if its blanks were answered right)
NEEDS = {"test_linear_beta_schedule": "schedule", "test_q_sample_sqrt_alpha_bar": "sab",
         "test_q_sample_sqrt_one_minus_alpha_bar": "somab", "test_q_sample_return": "ret", "test_loss_fn": "loss_fn",
         "test_train_x_t": "x_t", "test_train_pred_noise": "pred_noise", "test_train_loss": "loss"}
# why each forged record fails, in the words the grader must use
WHY = {("f01-short-list", "test_linear_beta_schedule"): "results has 1 entries; the grader asked for 4",
       ("f02-forged-records", "test_linear_beta_schedule"): "wrong endpoint",
       ("f02-forged-records", "test_q_sample_return"): "q_sample's result differs",
       ("f03-patches-torch-save", "test_linear_beta_schedule"): "results has 0 entries; the grader asked for 4",
       ("f04-empties-probe-args", "test_linear_beta_schedule"): "results has 0 entries; the grader asked for 4",
       ("f06-every-forgery", "test_linear_beta_schedule"): "results has 0 entries; the grader asked for 4",
       ("f06-every-forgery", "test_q_sample_sqrt_alpha_bar"): "sqrt_alpha_bar has the wrong values",
       ("f05-zeroes-draws", "test_train_x_t"): "It equals x_0"}


def _refs(assignment: str) -> dict:
    """The source notebook's solution cells, without the BEGIN/END SOLUTION lines: grade id -> code."""
    if assignment == A:
        return _reference_sources()
    src = next((REPO / "notebooks" / "source" / assignment).glob("*.ipynb"))
    return {c.metadata["nbgrader"]["grade_id"]: "\n".join(l for l in c.source.split("\n") if "### BEGIN SOLUTION" not in l
                                                          and "### END SOLUTION" not in l)
            for c in nbformat.read(str(src), as_version=4).cells if c.metadata.get("nbgrader", {}).get("solution")}


def _submission(root: Path, student: str):
    assignment, _, how = CLASS[student]
    release_nb = nbformat.read(str(next((root / "release" / assignment).glob("*.ipynb"))), as_version=4)
    nb = build_submission(release_nb, _refs(assignment), student, (set(), how))
    for old, new in how.get("edit_blank", {}).items():        # an edit of the handed-out (blank) cell itself
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "linear_beta_schedule")
        assert old in cell.source
        cell.source = cell.source.replace(old, new)
    return nb


def expected(points: dict, assignment: str, right: set) -> dict:
    """grade id -> the points a fair grader gives: a test's points if its blank was answered right, else 0."""
    return {gid: (pts if NEEDS[gid] in right else 0.0) for gid, pts in points[assignment].items()}


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forged")
    base = tempfile.mkdtemp(prefix="ddpm-forged-", dir="/var/tmp" if os.access("/var/tmp", os.W_OK) else None)
    root = Path(base) / "course"
    course = Course(root=root, cell_timeout=60, notebook_timeout=300, sandbox=SANDBOX, quiet=True)
    rel.release(course, [A, NB4], public=[A, "01_forward_1d"])
    points = {a: {gid: pts for _, gid, pts in course.points(a)} for a in (A, NB4)}
    inbox = tmp / "in"
    for student, (assignment, _, _) in CLASS.items():
        nb = _submission(root, student)
        d = inbox / student / assignment
        d.mkdir(parents=True)
        nbformat.write(nb, str(d / next((root / "release" / assignment).glob("*.ipynb")).name))
    col.collect(course, [inbox])
    results = {(r.assignment, r.student): r for r in ag.autograde(course, [A, NB4], jobs=2)}
    _, cells_csv, rows = gr.grades(course)
    with open(cells_csv) as f:
        cells = {(r["student_id"], r["cell"]): r for r in csv.DictReader(f) if r.get("kind", "autograded") == "autograded"}
    yield dict(course=course, root=root, points=points, results=results, cells=cells, tmp=tmp)
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("student", list(CLASS))
def test_each_forgery_gets_exactly_the_fair_grade(forged, student):
    assignment, right, _ = CLASS[student]
    want = expected(forged["points"], assignment, right)
    r = forged["results"][(assignment, student)]
    assert r.ok, r
    got = {gid: float(forged["cells"][(student, gid)]["score"]) for gid in want}
    assert got == want, (student, {gid: forged["cells"][(student, gid)].get("comments", "")[:200] for gid in want})
    assert r.score == pytest.approx(sum(want.values())), r


@pytest.mark.parametrize("student, gid", list(WHY))
def test_the_failed_test_says_why(forged, student, gid):
    assignment = CLASS[student][0]
    nb = nbformat.read(str(next((forged["root"] / "autograded" / student / assignment).glob("*.ipynb"))), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
    text = json.dumps(cell.outputs, ensure_ascii=False)
    assert WHY[(student, gid)] in text, text[:1500]


@pytest.mark.parametrize("student", GRADESCOPE)
def test_gradescope_gives_the_forgeries_the_same_grade(forged, student, tmp_path):
    """``grade_one`` is what run_autograder runs for each submission on Gradescope."""
    from ddpm_instructor.gradescope import grade_one
    assignment, right, _ = CLASS[student]
    nb_path = tmp_path / "my homework.ipynb"
    nbformat.write(_submission(forged["root"], student), str(nb_path))
    result = grade_one(nb_path, tmp_path / "results.json", assignment, sandbox=SANDBOX, workdir=tmp_path,
                       cell_timeout=60, notebook_timeout=300)
    want = expected(forged["points"], assignment, right)
    assert want == {gid: float(forged["cells"][(student, gid)]["score"]) for gid in want}      # as autograde gave
    got = {t["name"]: t["score"] for t in result["tests"] if t["name"] in want}
    assert got == want, (student, result)
    assert json.loads((tmp_path / "results.json").read_text())["tests"] == result["tests"]


# =========================================================================== answers reachable from the kernel
# Each attack runs as the grading kernel runs a notebook (tests/kernel_harness.py: only the bundle importable, the
# grader's inputs in DDPM_GRADER_INPUTS), and its graded cells' outputs are judged by graded.judge_outputs, as
# autograde judges them.  A control (the reference answer, same cells otherwise) shows the harness grades right.
NB4_PRELUDE = """import torch
from torch import nn
from tqdm.auto import tqdm
from solutions import q_sample
device, T, loss_fn = torch.device("cpu"), 1000, nn.MSELoss()"""
# the blanks left None; the probe's record class patched to fill them in from the grader's own inputs with whatever
# the kernel offers that computes them (today: tutorial_utils' spy_eps and sgd_after)
PATCHED_RECORD = """from tutorial_utils.checks import training as tr
from solutions import q_sample
_real_probe = tr.TrainRecord.probe.__func__
def _forged(cls, train_fn, inputs):
    rec = _real_probe(cls, train_fn, inputs)             # the loop as handed in: its blanks are None
    x0, t, noise = inputs["x0"], inputs["t"], inputs["noise"]
    rec.x_t = rec.call_x = q_sample(x0, t, noise)
    rec.call_t, rec.n_calls, rec.error = t, 1, ""
    if hasattr(tr, "spy_eps"):
        rec.pred_noise = tr.spy_eps(inputs["spy_scale"], inputs["spy_shift"], rec.x_t, t)
        rec.loss = ((rec.pred_noise - noise) ** 2).mean()
    if hasattr(tr, "sgd_after"):
        rec.scale_after, rec.shift_after = (v.float() for v in tr.sgd_after(inputs, rec.x_t, t, noise))
    return rec
tr.TrainRecord.probe = classmethod(_forged)"""
NB5_PRELUDE = """import torch
from solutions import extract"""
VIA_REVERSE_SDE = """from solutions import reverse_sde_step
@torch.no_grad()
def p_sample_DDPM(model, x, t, t_index):
    beta_t = extract(betas, t, x.shape)
    sqrt_one_minus_alpha_bar_t = extract(torch.sqrt(1.0 - alpha_bars), t, x.shape)
    eps = model(x, t)
    z = torch.randn_like(x) if t_index > 0 else torch.zeros_like(x)
    return reverse_sde_step(x, -eps / sqrt_one_minus_alpha_bar_t, float(beta_t.flatten()[0]), z)"""
NB8_PRELUDE = """import torch
NULL_CLASS = 10
def velocity(model, x_t, t, y):
    return model(x_t, 1000 * t, y)"""
VIA_MODEL_EPS = """from solutions.beyond import _model_eps
def guided_velocity(model, x_t, t, y, w):
    t = torch.full((x_t.shape[0],), float(t))
    return _model_eps(lambda x, s, c: velocity(model, x, s, c), x_t, t, y, float(w) + 1e-9, NULL_CLASS)"""
NB6_PRELUDE = """import torch
from torch import nn
from solutions import Unet"""
WIDTH_FROM_INPUTS = """import os
spec = torch.load(os.path.join(os.environ["DDPM_GRADER_INPUTS"], "test_UNet_cond_class_emb.pt"), weights_only=True)
WIDTH = max(v.shape[1] for v in spec["inputs"].values() if torch.is_tensor(v) and v.ndim == 2)
class UNet_cond(Unet):
    def __init__(self, ch=32, n_classes=10, in_ch=1, emb_dim=None):
        super().__init__(ch=ch, in_ch=in_ch, emb_dim=emb_dim)
        self.class_emb = nn.Embedding(n_classes, WIDTH)"""
# name -> (assignment, prelude, the answer cell (None: the reference's), attack cell, {grade id: points it earns})
KERNEL_ATTACKS = {
    "nb4-patched-record": (NB4, NB4_PRELUDE, "train_ddpm", PATCHED_RECORD,
                           # x_t: the forger wrote the blank's own line (q_sample, the reuse notebook 4 teaches) in
                           # its probe; the later blanks need the grader's helpers, which the kernel no longer has
                           {"test_train_x_t": 3, "test_train_pred_noise": 0, "test_train_loss": 0}),
    "nb5-reverse-sde-step": ("05_sampling", NB5_PRELUDE, None, VIA_REVERSE_SDE, {"test_p_sample_DDPM": 0}),
    "nb8-stage-07-helper": ("08_flow_matching", NB8_PRELUDE, None, VIA_MODEL_EPS, {"test_guided_velocity": 0}),
    "nb6-width-from-inputs": ("06_conditional", NB6_PRELUDE, None, WIDTH_FROM_INPUTS, {"test_UNet_cond_class_emb": 0}),
}
KERNEL_CONTROLS = {"nb4-patched-record": "train_ddpm", "nb5-reverse-sde-step": "p_sample_DDPM",
                   "nb8-stage-07-helper": "guided_velocity", "nb6-width-from-inputs": "UNet_cond"}
WHY_KERNEL = {"nb4-patched-record": "pred_noise is still None", "nb5-reverse-sde-step": "DelegationRefused",
              "nb8-stage-07-helper": "DelegationRefused", "nb6-width-from-inputs": "wrong shape"}


@pytest.fixture(scope="module")
def kernel_bundles(tmp_path_factory):
    from ddpm_instructor import bundle as bd
    from ddpm_instructor.coursedir import CourseDir
    root = tmp_path_factory.mktemp("kernel") / "course"
    course = CourseDir(root=root, quiet=True)
    wanted = sorted({a for a, *_ in KERNEL_ATTACKS.values()})
    every = sorted({s for s in __import__("solutions").STAGES.values() if s})
    for a in wanted:
        shutil.copytree(REPO / "notebooks" / "release" / a, course.release / a)
    bd.declare_public(course, every)            # every stage public that may be: the most a bundle ever carries
    return {a: bd.build_bundle(course, a)[0] for a in wanted}


def _run_in_kernel(bundle: Path, runs: list, gids: list, tmp: Path) -> list:
    """Each run's cells, then one graded cell per grade id, in one kernel (runs one after the other, as cells of one
    notebook); per run: grade id -> TestResult, judged as autograde judges a graded cell's outputs."""
    import subprocess
    import sys
    from ddpm_instructor import graded
    inputs = tmp / "inputs"
    graded.write_inputs(inputs, gids)
    graded_cells = [f"from tutorial_utils.probes import submit\nsubmit({g!r}, {OBJ[g]})" for g in gids]
    (tmp / "cells.json").write_text(json.dumps([c for cells in runs for c in cells + graded_cells]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(DDPM_GRADER_INPUTS=str(inputs), MPLBACKEND="Agg", DDPM_DOWNLOAD="0", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "kernel_harness.py"), str(bundle), str(tmp / "cells.json"),
                           str(tmp / "out.json")], env=env, cwd=tmp, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs, results = json.loads((tmp / "out.json").read_text()), []
    for cells in runs:
        outs, outputs = outputs[len(cells):len(cells) + len(gids)], outputs[len(cells) + len(gids):]
        results.append({g: graded.judge_outputs(g, out, inputs, 3.0) for g, out in zip(gids, outs)})
    return results


OBJ = {"test_train_x_t": "train_ddpm", "test_train_pred_noise": "train_ddpm", "test_train_loss": "train_ddpm",
       "test_p_sample_DDPM": "p_sample_DDPM", "test_guided_velocity": "guided_velocity",
       "test_UNet_cond_class_emb": "UNet_cond"}


def _answer(assignment: str, grade_id: str, reference: bool) -> str:
    """The answer cell: the reference's (solution lines kept), or the handed-out one (blanks None)."""
    if reference:
        return _refs(assignment)[grade_id]
    nb = nbformat.read(str(next((REPO / "notebooks" / "release" / assignment).glob("*.ipynb"))), as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.mark.parametrize("attack", list(KERNEL_ATTACKS))
def test_no_blank_is_earned_with_what_the_kernel_can_reach(kernel_bundles, attack, tmp_path):
    """The attack, after a control in the same kernel (the reference's answer, no attack: every blank passes, so a 0
    is the attack's)."""
    assignment, prelude, handed_out, cell, want = KERNEL_ATTACKS[attack]
    control = [prelude, _answer(assignment, KERNEL_CONTROLS[attack], reference=True)]
    attacked = [prelude] + ([_answer(assignment, handed_out, reference=False)] if handed_out else []) + [cell]
    ok, got = _run_in_kernel(kernel_bundles[assignment], [control, attacked], list(want), tmp_path)
    assert all(r.passed for r in ok.values()), ok
    assert {g: (3.0 if r.passed else 0.0) for g, r in got.items()} == {g: float(bool(p)) * 3 for g, p in want.items()}, got
    failed = [r.message for r in got.values() if not r.passed]
    assert any(WHY_KERNEL[attack] in m for m in failed), failed


# A refused function is absent from the bundle that grades its blank (solutions.REFUSED): what used to get past the
# in-kernel guard (hostile review H1: its __wrapped__, its wrapper's closure cell, importlib.reload of its module, a
# call from a new thread, clearing the REFUSED table) finds nothing to run.
THREADED = """import threading
def _in_thread(f, *args):
    box = []
    def run():
        try:
            box.append(f(*args))
        except BaseException as e:
            box.append(e)
    th = threading.Thread(target=run); th.start(); th.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]"""
NB5_BYPASSES = {                    # name -> (the function, got when the answer is called; what the 0's message names)
    "__wrapped__": ("reverse_sde_step.__wrapped__", "__wrapped__"),
    "closure cell": ("reverse_sde_step.__closure__[0].cell_contents", "NoneType"),
    "REFUSED cleared": ("(solutions.REFUSED.clear(), reverse_sde_step)[1]", "DelegationRefused"),
    "thread": ("lambda *a: _in_thread(reverse_sde_step, *a)", "DelegationRefused"),
    "importlib.reload": ("importlib.reload(solutions.score1d).reverse_sde_step", "DelegationRefused"),
}


def test_a_refused_function_cannot_be_brought_back_in_the_kernel(kernel_bundles, tmp_path):
    """Notebook 5 through notebook 1's reverse_sde_step, each way round the old guard, in one kernel (reload last)."""
    control = [NB5_PRELUDE, _answer("05_sampling", "p_sample_DDPM", reference=True)]
    attacks = [[NB5_PRELUDE, "import importlib, solutions, solutions.score1d\n" + THREADED + "\n" + VIA_REVERSE_SDE.replace(
                "    return reverse_sde_step(", f"    return ({get})(")] for get, _ in NB5_BYPASSES.values()]
    ok, *got = _run_in_kernel(kernel_bundles["05_sampling"], [control] + attacks, ["test_p_sample_DDPM"], tmp_path)
    assert ok["test_p_sample_DDPM"].passed, ok
    for (name, (_, why)), res in zip(NB5_BYPASSES.items(), got):
        r = res["test_p_sample_DDPM"]
        assert not r.passed and r.points == 0, (name, r)
        assert why in r.message, (name, r.message)


def test_a_refused_function_is_a_stub_in_the_bundle_that_grades_it(kernel_bundles):
    """The grading bundle's module holds none of the refused function's code (only a stub that raises with the
    decision's reason); a bundle of an assignment that does not grade that blank ships it whole (notebook 4 samples
    with reverse_sde_step)."""
    import ast
    import inspect
    import solutions
    from ddpm_instructor import bundle as bd

    def body(fn_node):
        stmts = fn_node.body[1:] if isinstance(fn_node.body[0], ast.Expr) else fn_node.body
        return [ast.unparse(s) for s in stmts]

    def function(path, name):
        return next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == name)

    checked = 0
    for assignment, folder in kernel_bundles.items():
        kinds = bd.graded_kinds(sorted(folder.glob("*.ipynb")))
        for kind, refused in solutions.REFUSED.items():
            for qualname, reason in refused.items():
                module, _, name = qualname.partition(".")
                shipped = folder / "solutions" / f"{module}.py"
                if not shipped.is_file():
                    continue
                original = ast.parse(inspect.getsource(getattr(__import__(f"solutions.{module}", fromlist=[name]), name)))
                text = ast.unparse(ast.parse(shipped.read_text()))
                if kind in kinds:
                    stub = function(shipped, name)
                    assert [type(s) for s in stub.body] == [ast.Expr, ast.ImportFrom, ast.Raise], ast.unparse(stub)
                    assert reason in ast.unparse(stub)
                    assert not [line for line in body(original.body[0]) if line in text], (assignment, qualname)
                    checked += 1
                else:
                    assert body(function(shipped, name)) == body(original.body[0]), (assignment, qualname)
    assert checked == 2, "expected notebook 5's and notebook 8's bundles to stub their refused function"
