"""Each graded blank is declared once (``tutorial_utils.checks``: a ``Blank`` in its stage module, judged by one
``SelfCheck``; ``ddpm_instructor.graded``: one ``Graded`` per grade id pointing at it), and the declarations, the
notebooks, the stored self-check data and the per-blank delegation decision (``solutions.REFUSED``/``REUSE``) agree:
a blank declared twice or never registered, a graded cell without a declaration, a declaration without a graded
cell, a self-check without stored data, a notebook that grades a blank without running its self-check, or a
decision about a probe no blank has, each fails here."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

import solutions
from ddpm_instructor import graded
from tutorial_utils import checks
from tutorial_utils.checks import BLANKS, CHECK_DATA, RECORDS, SELF_CHECKS, Blank, SelfCheck

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "notebooks" / "source").glob("*/*.ipynb"))
SUBMIT = re.compile(r"""\bsubmit\(\s*["']([^"']+)["']""")
CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")


def _cells(nb_path: Path):
    return json.loads(nb_path.read_text())["cells"]


def _graded_cells(nb_path: Path) -> list[tuple[str, str]]:
    """(grade id, source) of each graded test cell (nbgrader ``grade`` and not ``solution``)."""
    out = []
    for c in _cells(nb_path):
        g = c["metadata"].get("nbgrader", {})
        if g.get("grade") and not g.get("solution"):
            out.append((g.get("grade_id"), "".join(c["source"])))
    return out


def _declared_in_modules(kind) -> list:
    """Every object of type ``kind`` bound at the top level of a stage module of tutorial_utils.checks."""
    return [v for stage in checks.STAGES for v in vars(stage).values() if isinstance(v, kind)]


def test_each_blank_is_declared_once_and_judged_by_exactly_one_self_check():
    counts = Counter(BLANKS)
    assert not [b for b, n in counts.items() if n > 1], "a blank in two self-checks"
    loose = [b for b in _declared_in_modules(Blank) if b not in counts]
    assert not loose, f"blanks declared but in no stage's CHECKS: {loose}"
    twice = [k for k, n in Counter((b.record, b.field) for b in BLANKS).items() if n > 1]
    assert not twice, f"two Blank objects for one record field (one blank declared twice): {twice}"
    labels = [k for k, n in Counter(b.label for b in BLANKS).items() if n > 1]
    assert not labels, f"two blanks with one label: {labels}"
    assert not [c for c in _declared_in_modules(SelfCheck) if c not in SELF_CHECKS], "a self-check in no CHECKS"


def test_each_blank_is_graded_by_exactly_one_grade_id():
    by_blank = Counter(case.blank for case in graded.TESTS.values())
    assert not [b for b, n in by_blank.items() if n > 1], "a blank graded by two grade ids"
    assert set(by_blank) == set(BLANKS), {b.label for b in set(by_blank) ^ set(BLANKS)}
    assert all(case.grade_id == gid for gid, case in graded.TESTS.items())


def test_a_grade_id_or_self_check_declared_twice_is_an_error():
    one = next(iter(graded.TESTS.values()))
    with pytest.raises(ValueError, match=f"the grade id '{one.grade_id}' is declared twice"):
        graded._one_each([one, one], lambda g: g.grade_id, "the grade id")


def test_every_graded_cell_has_a_declaration_and_every_declaration_a_graded_cell():
    cells = [(nb.parent.name, gid, src) for nb in SOURCES for gid, src in _graded_cells(nb)]
    assert cells, "no graded cells found in notebooks/source"
    ids = Counter(gid for _, gid, _ in cells)
    assert not [g for g, n in ids.items() if n > 1], "a grade id used by two graded cells"
    assert not set(ids) - set(graded.TESTS), f"graded cells without a declaration: {set(ids) - set(graded.TESTS)}"
    assert not set(graded.TESTS) - set(ids), f"declarations without a graded cell: {set(graded.TESTS) - set(ids)}"
    for assignment, gid, src in cells:
        assert SUBMIT.findall(src) == [gid], (assignment, gid, src)


def test_every_self_check_has_its_stored_data_and_nothing_else_is_stored():
    names = [c.name for c in SELF_CHECKS]
    assert len(set(names)) == len(names)
    assert set(graded.SELF_CHECKS) == set(names)
    assert all(graded.SELF_CHECKS[c.name].check is c for c in SELF_CHECKS)
    stored = torch.load(CHECK_DATA, weights_only=True)
    assert set(stored) == set(names), set(stored) ^ set(names)


def _self_checks_run_by(fn) -> set:
    """The SelfCheck objects a ``check_*`` function runs (the module constants its one line names)."""
    g = fn.__globals__
    return {g[n] for n in fn.__code__.co_names if isinstance(g.get(n), SelfCheck)}


def test_each_notebook_runs_the_self_check_of_every_blank_it_grades():
    public = {name: getattr(checks, name) for name in checks.__all__ if name.startswith("check_")}
    assert all(_self_checks_run_by(f) for f in public.values()), "a check_* function that runs no SelfCheck"
    for nb in SOURCES:
        graded_blanks = {graded.TESTS[gid].blank for gid, _ in _graded_cells(nb)}
        called = {m for c in _cells(nb) if c["cell_type"] == "code" for m in CHECK_CALL.findall("".join(c["source"]))}
        assert not called - set(public), (nb.name, called - set(public))
        checked = {b for name in called for check in _self_checks_run_by(public[name]) for b in check.blanks}
        missing = graded_blanks - checked
        assert not missing, f"{nb.name} grades {[b.label for b in missing]} but runs no self-check of them"


def test_the_delegation_decision_names_declared_probes_and_real_functions():
    kinds = {b.kind for b in BLANKS}
    assert set(RECORDS) == kinds
    for table in (solutions.REFUSED, solutions.REUSE):
        assert set(table) <= kinds, f"a decision about a probe no blank has: {set(table) - kinds}"
        for qualnames in table.values():
            for q in qualnames:
                module, _, name = q.partition(".")
                assert module in solutions.STAGES and callable(
                    getattr(__import__(f"solutions.{module}", fromlist=[name]), name, None)), q
