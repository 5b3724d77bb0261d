"""The student versions (notebooks/release) are nbgrader's output, carry exactly the course's blanks, fail
their self-checks as released, and pass them (and the hidden graded tests) once the blanks are filled in.

Executions here are cut after the last self-check / graded cell of each notebook and skip the demonstration
cells the grader skips (``grader-skip``): the expensive rest (training, sampling) is the same code as the source
notebook, which nbval executes in full.
"""
from __future__ import annotations

import base64
import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor.blanks import BLANK_RE, generate_student_versions
from ddpm_instructor.keep_outputs import ClearAnswerOutputs, blank_names, used_names

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = {p.parent.name: p.name for p in sorted((NOTEBOOKS / "source").glob("*/*.ipynb"))}


def source_path(assignment):
    return NOTEBOOKS / "source" / assignment / LESSONS[assignment]


def release_path(assignment):
    return NOTEBOOKS / "release" / assignment / LESSONS[assignment]


# Every blank, verbatim, as the student sees it.
BLANKS = {
    "01_forward_1d": ["m = None", "v = None", "return None", "return None"],
    "02_forward_closed_form": ["return None", "sqrt_alpha_bar = None", "sqrt_one_minus_alpha_bar = None",
                               "return None"],
    "04_training": ["loss_fn = None", "x_t = None", "pred_noise = None", "loss = loss_fn(None)"],
    "05_sampling": ["x_tm1 = None"],
    "06_conditional": ["self.class_emb = None", "y_emb = None", "cond_emb = None"],
    "07_beyond": ["alpha_bars = None", "betas = None", "x0_pred = None", "x_prev = None", "eps = None"],
    "08_flow_matching": ["v = None", "v = None", "ratio = None", "x_t = None", "target = None", "x_next = None", "x_next = None",
                         "v = None"],
    "09_applications": ["x_merged = None", "x_next = None", "z = None"],
}
# What the self-check says about an unfilled blank (the first blank a check cell meets).
RELEASED_CHECK_MESSAGES = {
    "check_mixture_score": "m is still None \u2014 fill in the blank",
    "check_pf_ode_step": "pf_ode_step returned None \u2014 fill in the blank",
    "check_linear_beta_schedule": "linear_beta_schedule returned None \u2014 fill in the blank",
    "check_q_sample": "sqrt_alpha_bar is still None \u2014 fill in the blank",
    "check_loss_fn": "loss_fn is None \u2014 fill in the blank",
    "check_train_ddpm": "x_t is still None \u2014 fill in the blank",
    "check_p_sample_DDPM": "p_sample_DDPM returned None \u2014 fill in the blank",
    "check_UNet_cond": "self.class_emb is still None \u2014 fill in the blank",
    "check_cosine_beta_schedule": "alpha_bars is still None \u2014 fill in the blank",
    "check_ddim_step": "x0_pred is still None \u2014 fill in the blank",
    "check_guided_eps": "guided_eps returned None \u2014 fill in the blank",
    "check_flow_interpolant": "x_t is still None \u2014 fill in the blank",
    "check_velocity_target": "target is still None \u2014 fill in the blank",
    "check_euler_step": "x_next is still None \u2014 fill in the blank",
    "check_heun_step": "x_next is still None \u2014 fill in the blank",
    "check_guided_velocity": "v is still None \u2014 fill in the blank",
    "check_eps_to_velocity": "v is still None \u2014 fill in the blank",
    "check_mixture_velocity": "v is still None \u2014 fill in the blank",
    "check_straightness": "ratio is still None \u2014 fill in the blank",
    "check_merge_known": "x_merged is still None \u2014 fill in the blank",
    "check_ddim_invert_step": "x_next is still None \u2014 fill in the blank",
    "check_slerp": "z is still None \u2014 fill in the blank",
}
GRADED = sorted(BLANKS)


def _read(path):
    return nbformat.read(path, as_version=4)


def _nbg(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _code_lines(nb):
    return [line.strip() for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()]


ANSWER_STUB = "# Your notes on the optional exercise (not graded): write them here."
WRITTEN_STUB = "YOUR ANSWER HERE"     # nbgrader's ClearSolutions.text_stub for Markdown answer cells


def _is_answer(cell) -> bool:
    """The ungraded notes on an optional exercise (instructor version: a model answer in comments)."""
    return _nbg(cell).get("grade_id", "").startswith("answer_")


def _is_written(cell) -> bool:
    """A written answer, graded by hand (instructor version: the model answer and the rubric)."""
    return _nbg(cell).get("grade_id", "").startswith("written_")


def test_regenerating_reproduces_the_committed_student_versions(tmp_path):
    shutil.copytree(NOTEBOOKS / "source", tmp_path / "source")
    written = generate_student_versions(tmp_path)
    assert len(written) == len(LESSONS)
    for assignment, name in LESSONS.items():
        fresh = (tmp_path / "release" / assignment / name).read_text()
        committed = release_path(assignment).read_text()
        assert fresh == committed, f"notebooks/release/{assignment}/{name} is stale: run ./course release"


@pytest.mark.parametrize("assignment", GRADED)
def test_every_blank_is_in_the_student_version_verbatim(assignment):
    lines = _code_lines(_read(release_path(assignment)))
    for blank in BLANKS[assignment]:
        assert lines.count(blank) >= BLANKS[assignment].count(blank), f"{blank!r} missing in {assignment}"
    # ... and nothing else was blanked: the source has exactly these regions.
    src = _read(source_path(assignment))
    stubs = [BLANK_RE.search(line).group("stub").strip() for c in src.cells if not _is_answer(c) and not _is_written(c)
             for line in c.source.splitlines() if "BEGIN SOLUTION" in line]
    assert stubs == BLANKS[assignment]


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_no_solution_or_hidden_test_leaks_into_the_student_version(assignment):
    rel, src = _read(release_path(assignment)), _read(source_path(assignment))
    text = "\n".join(c.source for c in rel.cells)
    for marker in ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "grade_",
                   "NotImplementedError"]:
        assert marker not in text, f"{marker!r} leaked into the student version of {assignment}"
    released_lines = set(_code_lines(rel))
    for cell in src.cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
                inside = False
            elif inside and line.strip():
                assert line.strip() not in released_lines, f"solution line leaked: {line.strip()!r}"


# ----------------------------------------------------------------------------- stored outputs
# The student versions keep the source notebooks' figures, tables and measured numbers (ClearAnswerOutputs in
# nbgrader_config.py), never an output that says something about an answer.
SELF_CHECK = re.compile(r"\bcheck_\w+\s*\(")      # a call of a tutorial_utils.checks function
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _is_nbgrader_cell(cell) -> bool:
    m = _nbg(cell)
    return bool(m.get("grade") or m.get("solution") or m.get("locked"))


def _answer_output_cell(cell) -> bool:
    """A cell whose outputs must never reach a student: nbgrader cells (answers, graded tests) and self-checks."""
    return _is_nbgrader_cell(cell) or bool(SELF_CHECK.search(cell.source))


def _pngs(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def _text(out) -> str:
    return out.get("text", "") + "".join(v for k, v in out.get("data", {}).items() if k.startswith("text/"))


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_no_self_check_nbgrader_or_error_output_survives_in_the_student_version(assignment):
    rel = _read(release_path(assignment))
    assert "widgets" not in rel.metadata, "widget state (tqdm bars) must not reach the student version"
    blanks = set().union(*(blank_names(c.source) for c in rel.cells if c.cell_type == "code" and _nbg(c).get("solution")))
    for cell in rel.cells:
        if cell.cell_type != "code":
            continue
        where = f"{assignment}, cell {cell.get('id')}"
        assert cell.execution_count is None, f"{where}: execution counts are cleared"
        if _answer_output_cell(cell):
            assert not cell.outputs, f"{where}: the output of an nbgrader or self-check cell reached the student version"
        for out in cell.outputs:
            assert out.output_type != "error", f"{where}: an error output reached the student version"
            assert out.get("execution_count") is None, where
            assert WIDGET_MIME not in out.get("data", {}), f"{where}: a widget (progress bar) output"
            assert not (out.output_type == "stream" and out.name == "stderr" and ("\r" in out.text or "%|" in out.text)), \
                f"{where}: a progress bar on stderr"
            assert "\u2713" not in _text(out), f"{where}: a self-check's \u2713 line reached the student version"
            if blanks & used_names(cell.source) and "laptop-output" not in cell.metadata.get("tags", []):
                # (a laptop-output cell stores a reference run's numbers: tests/test_laptop_outputs.py checks them)
                assert "image/png" in out.get("data", {}), \
                    f"{where}: prints the value of a blank ({sorted(blanks & used_names(cell.source))}); only its figures may stay"


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_every_figure_of_the_source_notebook_reaches_the_student_version(assignment):
    """Cell by cell (by cell id): each figure stored in a source cell whose outputs reveal no answer is in the
    student version, so a student sees what a notebook shows before running it."""
    src, rel = _read(source_path(assignment)), _read(release_path(assignment))
    released = {c.get("id"): c for c in rel.cells}
    expected = {c["id"]: _pngs(c) for c in src.cells if c.cell_type == "code" and not _answer_output_cell(c)
                and _pngs(c) and not any(o.output_type == "error" for o in c.outputs)}
    assert expected, f"{assignment}: the source notebook stores no figure (tools/notebook_outputs.py)"
    got = {cid: _pngs(released[cid]) if cid in released else None for cid in expected}
    assert got == expected, f"{assignment}: figures per cell id, source {expected} vs student version {got}"
    for cid in expected:                            # the same images, not merely as many
        assert [o.data["image/png"] for o in released[cid].outputs if "image/png" in o.get("data", {})] == \
            [o.data["image/png"] for o in src.cells[[c.get("id") for c in src.cells].index(cid)].outputs
             if "image/png" in o.get("data", {})], cid


def _budget():
    """The size budget of stored outputs (tools/notebook_outputs.py; stated in notebooks/README.md)."""
    spec = importlib.util.spec_from_file_location("notebook_outputs", NOTEBOOKS.parent / "tools" / "notebook_outputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_student_versions_stay_within_the_size_budget(assignment):
    budget, path = _budget(), release_path(assignment)
    assert path.stat().st_size <= budget.NOTEBOOK_CAP, \
        f"{path.name} (student version) is {path.stat().st_size} bytes, over {budget.NOTEBOOK_CAP}"
    for cell in _read(path).cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            assert set(data) <= set(budget.KEEP_MIME), f"{cell.get('id')}: unexpected output types {sorted(data)}"
            if "image/png" in data:
                size = len(base64.b64decode(data["image/png"]))
                assert size <= budget.PNG_CAP, f"{cell.get('id')}: a stored PNG of {size} bytes (cap {budget.PNG_CAP})"


def test_all_student_versions_together_stay_within_the_budget():
    budget = _budget()
    total = sum(release_path(a).stat().st_size for a in LESSONS)
    assert total <= budget.TOTAL_CAP, f"the student versions hold {total} bytes (budget {budget.TOTAL_CAP})"


def _stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _figure():
    return nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"})


def test_clear_answer_outputs_keeps_exactly_the_outputs_that_reveal_no_answer():
    """Each rule of ClearAnswerOutputs on a notebook that has one cell of each kind."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    def cell(cid, source, outputs, nbgrader=None):
        c = new_code_cell(source, id=cid, outputs=outputs, execution_count=7)
        if nbgrader:
            c.metadata["nbgrader"] = dict(schema_version=3, grade_id=cid, points=1, **nbgrader)
        return c

    result = new_output("execute_result", data={"text/plain": "0.5"}, execution_count=7)
    nb = new_notebook(metadata={"widgets": {"state": {}}}, cells=[
        cell("plain", "print(x.mean())\nx.std()", [_stream("mean 0.1\n"), result]),
        cell("figure", "plt.plot(x); plt.show()", [_figure()]),
        cell("f", "def f(x):\n    return None\nloss_fn = None", [],
             dict(grade=False, solution=True, locked=False)),
        cell("check_f", "from tutorial_utils.checks import check_f\ncheck_f(f)", [_stream("\u2713 f is right\n")],
             dict(grade=False, solution=False, locked=True)),
        cell("test_f", "assert f(1) == 2", [_stream("ok\n")], dict(grade=True, solution=False, locked=True)),
        cell("ungraded_check", "check_f(f)", [_stream("\u2713 f is right\n")]),
        cell("prints_blank", "print(loss_fn)\nplt.imshow(f(x)); plt.show()", [_stream("MSELoss()\n"), _figure()]),
        cell("error", "print(1)\n1/0", [_stream("1\n"), new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]),
        cell("tqdm", "for _ in tqdm(range(3)): pass", [
            new_output("display_data", data={WIDGET_MIME: {"model_id": "m"}, "text/plain": "  0%|          | 0/3"}),
            _stream("100%|##########| 3/3 [00:01<00:00,  2.50it/s]\r", name="stderr"),
            _stream("UserWarning: something\n", name="stderr"), _stream("done\n")]),
        new_markdown_cell("text"),
    ])
    nb, _ = ClearAnswerOutputs().preprocess(nb, {})
    kept = {c.id: [(o.output_type, o.get("name"), o.get("text") or sorted(o.get("data", {}))) for o in c.outputs]
            for c in nb.cells if c.cell_type == "code"}
    assert kept == {
        "plain": [("stream", "stdout", "mean 0.1\n"), ("execute_result", None, ["text/plain"])],
        "figure": [("display_data", None, ["image/png", "text/plain"])],
        "f": [], "check_f": [], "test_f": [], "ungraded_check": [],
        "prints_blank": [("display_data", None, ["image/png", "text/plain"])],
        "error": [("stream", "stdout", "1\n")],
        "tqdm": [("stream", "stderr", "UserWarning: something\n"), ("stream", "stdout", "done\n")],
    }
    assert "widgets" not in nb.metadata
    assert all(c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert nb.cells[0].outputs[1].execution_count is None
    # the rule's pieces are traitlets: without blank_text, a printed blank would stay
    nb2 = new_notebook(cells=[cell("f", "loss_fn = None", [], dict(grade=False, solution=True, locked=False)),
                              cell("p", "print(loss_fn)", [_stream("MSELoss()\n")])])
    nb2, _ = ClearAnswerOutputs(blank_text=False).preprocess(nb2, {})
    assert nb2.cells[1].outputs


def test_the_course_config_swaps_clear_output_in_generate_assignment_only():
    """GenerateAssignment runs ClearAnswerOutputs where nbgrader has ClearOutput; autograde keeps nbgrader's own
    ClearOutput first, so a submission's stored outputs are never taken for its results."""
    from nbgrader.converters import Autograde, GenerateAssignment
    from nbgrader.preprocessors import ClearOutput

    from ddpm_instructor.blanks import _load_config

    cfg = _load_config(NOTEBOOKS)
    pps = GenerateAssignment(config=cfg).preprocessors
    default = GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default()
    assert ClearAnswerOutputs in pps and ClearOutput not in pps
    assert pps.index(ClearAnswerOutputs) == default.index(ClearOutput)
    assert Autograde(config=cfg).sanitize_preprocessors[0] is ClearOutput


WITH_ANSWERS = sorted(a for a in LESSONS if any(_is_answer(c) for c in _read(source_path(a)).cells))


def test_the_answer_leak_check_has_notebooks_to_check():
    """The check below runs on the notebooks that have optional exercises with model answers: there must be some
    (tests/test_notebooks.py checks which notebooks must answer their questions)."""
    assert WITH_ANSWERS, "no source notebook has an answer_ cell: the leak check below would check nothing"


@pytest.mark.parametrize("assignment", WITH_ANSWERS)
def test_no_answer_leaks_into_the_student_version(assignment):
    """Each answer cell is released as the one-line stub, and no line of any answer appears anywhere in the release."""
    rel, src = _read(release_path(assignment)), _read(source_path(assignment))
    answers = {c["id"]: c for c in src.cells if _is_answer(c)}
    assert answers
    released = {c.get("id"): c for c in rel.cells}
    text = "\n".join(c.source for c in rel.cells)
    for gid, cell in answers.items():
        assert released[gid].source == ANSWER_STUB, (gid, released[gid].source)
        for line in cell.source.splitlines()[1:-1]:
            words = line.lstrip("# ").strip()
            if len(words) > 12:
                assert words not in text, f"answer text leaked into the student version: {words!r}"


def _solution_lines(cell) -> list[str]:
    lines = cell.source.split("\n")
    k, end = lines.index("### BEGIN SOLUTION"), lines.index("### END SOLUTION")
    return lines[k + 1:end]


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_no_model_answer_or_rubric_reaches_the_student_version(assignment):
    """Each written answer cell is released as its heading and nbgrader's stub: no line of the model answer or the
    rubric appears anywhere in the student version, nor the words that introduce them."""
    rel, src = _read(release_path(assignment)), _read(source_path(assignment))
    written = [c for c in src.cells if _is_written(c)]
    released = {c.get("id"): c for c in rel.cells}
    text = "\n".join(c.source for c in rel.cells)
    assert "Model answer" not in text and "Rubric" not in text
    for cell in written:
        gid = cell["id"]
        heading = cell.source.split("\n")[0]
        assert released[gid].source == f"{heading}\n\n{WRITTEN_STUB}", (gid, released[gid].source)
        assert _nbg(released[gid])["points"] == _nbg(cell)["points"] and _nbg(released[gid])["grade"]
        inside = [line.strip() for line in _solution_lines(cell) if len(line.strip()) > 12]
        assert len(inside) >= 2, gid
        for line in inside:
            assert line not in text, f"model answer or rubric leaked into the student version: {line!r}"


def test_written_answers_wait_for_the_formgrader_unless_left_blank():
    """nbgrader's rule, on the released cells: an answer left as released scores 0 at once (its checksum is
    unchanged); any written answer has no automatic score, so the formgrader asks for a manual grade."""
    from nbgrader.utils import determine_grade
    import re
    cells = [c for a in LESSONS for c in _read(release_path(a)).cells if _is_written(c)]
    stated = re.search(r"\*\*(\d+)\*\* for the written answers \((\d+) questions\)", (NOTEBOOKS / "README.md").read_text())
    assert stated and (sum(_nbg(c)["points"] for c in cells), len(cells)) == tuple(map(int, stated.groups()))
    for cell in cells:
        assert determine_grade(cell) == (0, _nbg(cell)["points"])
        answered = nbformat.from_dict(dict(cell, source=cell.source.replace(WRITTEN_STUB, "The noise level.")))
        assert determine_grade(answered) == (None, _nbg(cell)["points"])


def _cut_after_last_graded_cell(nb):
    """The cells up to the last self-check / graded cell, without the demonstration cells the grader skips too
    (tagged ``grader-skip``: notebook 7's DDIM table, the training runs), which nbval runs in the source."""
    from ddpm_instructor.execute import GuardedExecute

    skip = set(GuardedExecute.class_traits()["skip_tags"].default())
    last = max(i for i, c in enumerate(nb.cells) if _nbg(c).get("grade_id", "").startswith(("check_", "test_")))
    nb.cells = [c for c in nb.cells[:last + 1] if not skip & set(c.metadata.get("tags", []))]
    return nb


def _restore_hidden_tests(nb, src):
    """What `nbgrader autograde` does: put the instructor's graded cells back, hidden tests included."""
    by_id = {_nbg(c)["grade_id"]: c for c in src.cells if _nbg(c).get("grade")}
    for cell in nb.cells:
        gid = _nbg(cell).get("grade_id")
        if gid in by_id:
            cell.source = by_id[gid].source
    return nb


def _fill_blanks(nb, src):
    """Substitute every blank of the student version with the reference code of the source notebook."""
    by_id = {_nbg(c)["grade_id"]: c for c in src.cells if _nbg(c).get("solution") and not _is_answer(c)
             and not _is_written(c)}
    filled = 0
    for cell in nb.cells:
        gid = _nbg(cell).get("grade_id")
        if gid not in by_id:
            continue
        regions, current = [], None
        for line in by_id[gid].source.split("\n"):
            if "BEGIN SOLUTION" in line:
                current = (BLANK_RE.search(line).group("stub").strip(), [])
            elif "END SOLUTION" in line:
                regions.append(current)
                current = None
            elif current is not None:
                current[1].append(line)
        lines = cell.source.split("\n")
        for stub, code in regions:
            k = next(i for i, line in enumerate(lines) if line.strip() == stub)
            lines[k:k + 1] = code
            filled += 1
        cell.source = "\n".join(lines)
    return nb, filled


def _errors(cell):
    return [o for o in cell.get("outputs", []) if o.output_type == "error"]


@pytest.fixture(scope="module", params=GRADED)
def released_run(request, run_notebook):
    assignment = request.param
    src = _read(source_path(assignment))
    nb = _restore_hidden_tests(_cut_after_last_graded_cell(_read(release_path(assignment))), src)
    run_notebook(nb, release_path(assignment).parent, allow_errors=True)
    return assignment, nb


def test_student_versions_fail_their_self_checks_as_released(released_run):
    assignment, nb = released_run
    checks = [c for c in nb.cells if _nbg(c).get("grade_id", "").startswith("check_")]
    assert checks
    for cell in checks:
        errs = _errors(cell)
        gid = _nbg(cell)["grade_id"]
        assert errs, f"{assignment}: the self-check {gid} passed on the unfilled student version"
        assert errs[0].ename == "SelfCheckError", (gid, errs[0].ename, errs[0].evalue)
        assert RELEASED_CHECK_MESSAGES[gid] in errs[0].evalue, (gid, errs[0].evalue)


def test_released_student_versions_score_zero(released_run):
    assignment, nb = released_run
    graded = [c for c in nb.cells if _nbg(c).get("grade") and not _is_written(c)]
    assert graded
    for cell in graded:
        assert _errors(cell), f"{assignment}: graded test {_nbg(cell)['grade_id']} passes without an answer"


@pytest.mark.parametrize("assignment", GRADED)
def test_filling_the_blanks_with_the_reference_code_passes(assignment, run_notebook):
    src = _read(source_path(assignment))
    nb, filled = _fill_blanks(_cut_after_last_graded_cell(_read(release_path(assignment))), src)
    assert filled == len(BLANKS[assignment])
    nb = _restore_hidden_tests(nb, src)
    run_notebook(nb, release_path(assignment).parent, allow_errors=True)
    failed = [(_nbg(c).get("grade_id") or c.source[:40], e.ename, e.evalue) for c in nb.cells for e in _errors(c)]
    assert not failed, failed
    for cell in nb.cells:
        if _nbg(cell).get("grade_id", "").startswith("check_"):
            text = "".join(o.get("text", "") for o in cell.outputs)
            assert "\u2713" in text, (assignment, _nbg(cell)["grade_id"], text)
