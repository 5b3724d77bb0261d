"""The student versions (notebooks/release) are nbgrader's output, carry exactly the course's blanks, fail
their self-checks as released, and pass them (and the hidden graded tests) once the blanks are filled in.

Executions here are cut after the last self-check / graded cell of each notebook: the expensive rest
(training, sampling) is the same code as the source notebook, which nbval executes in full.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor.blanks import BLANK_RE, generate_student_versions

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LESSONS = {p.parent.name: p.name for p in sorted((NOTEBOOKS / "source").glob("*/*.ipynb"))}


def source_path(assignment):
    return NOTEBOOKS / "source" / assignment / LESSONS[assignment]


def release_path(assignment):
    return NOTEBOOKS / "release" / assignment / LESSONS[assignment]


# Every blank, verbatim, as the student sees it.
BLANKS = {
    "02_forward_closed_form": ["return None", "sqrt_alpha_bar = None", "sqrt_one_minus_alpha_bar = None",
                               "return None"],
    "04_training": ["loss_fn = None", "x_t = None", "pred_noise = None", "loss = loss_fn(None)"],
    "05_sampling": ["x_tm1 = None"],
    "06_conditional": ["self.class_emb = None", "y_emb = None", "cond_emb = None"],
    "07_beyond": ["alpha_bars = None", "betas = None", "x0_pred = None", "x_prev = None", "eps = None"],
    "08_flow_matching": ["x_t = None", "target = None", "x_next = None", "x_next = None", "v = None"],
}
# What the self-check says about an unfilled blank (the first blank a check cell meets).
RELEASED_CHECK_MESSAGES = {
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
    assert all(not c.get("outputs") for c in rel.cells if c.cell_type == "code"), "student versions ship no outputs"


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_no_answer_leaks_into_the_student_version(assignment):
    """Each answer cell is released as the one-line stub, and no line of any answer appears anywhere in the release."""
    rel, src = _read(release_path(assignment)), _read(source_path(assignment))
    answers = {c["id"]: c for c in src.cells if _is_answer(c)}
    if not answers:      # tests/test_notebooks.py checks which notebooks must answer their questions
        return
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
    last = max(i for i, c in enumerate(nb.cells) if _nbg(c).get("grade_id", "").startswith(("check_", "test_")))
    nb.cells = nb.cells[:last + 1]
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
