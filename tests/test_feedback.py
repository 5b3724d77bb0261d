"""ddpm_instructor.feedback: every page forbids scripts (a Content-Security-Policy in its <head>, before anything
it governs), and each student's page is rendered in a process of its own, so one that hangs costs only its owner
a failure page.  Reuses the small course of tests/test_grades_export.py (nbgrader's gradebook, no notebook run);
about 15 s."""
from __future__ import annotations

import re
import time

from test_grades_export import A, course  # noqa: F401 - the module fixture, shared

from ddpm_instructor import feedback as fb

DIRECTIVES = ("script-src 'none'", "object-src 'none'", "frame-src 'none'", "base-uri 'none'", "form-action 'none'",
              "default-src 'none'", "connect-src 'none'", "style-src 'unsafe-inline'", "img-src data:")


def _policy(page: str) -> str:
    """The page's CSP, asserted to be the first element of its <head> (a meta CSP governs what comes after it)."""
    head = re.search(r"<head[^>]*>(.*?)</head>", page, re.S | re.I)
    assert head, page[:500]
    first = re.match(r'\s*<meta http-equiv="Content-Security-Policy" content="([^"]*)">', head.group(1))
    assert first, head.group(1)[:500]
    assert page.lower().find("<script") == -1 or page.lower().find("<script") > page.find(first.group(0))
    return first.group(1)


def test_every_page_forbids_scripts_frames_forms_and_requests(course):  # noqa: F811
    pages = fb.feedback(course, [A], students=["ann", "bob", "cat"])
    names = {(p.parent.parent.name, p.name) for p in pages}
    assert ("ann", f"{A}.html") in names and ("cat", "GRADING_PROBLEM.html") in names, names
    for page in pages:
        policy = _policy(page.read_text())
        for d in DIRECTIVES:
            assert d in policy, (page, d, policy)
        assert "unsafe-eval" not in policy and "script-src 'none'" in policy
    ann = (course.feedback / "ann" / A / f"{A}.html").read_text()
    assert "Right idea; say why the bumps merge at t = 250." in ann            # still the real page
    fb.add_csp(course.feedback / "ann" / A / f"{A}.html")                      # once only
    assert (course.feedback / "ann" / A / f"{A}.html").read_text().count("Content-Security-Policy") == 1


def test_a_page_that_hangs_costs_only_its_owner(course, monkeypatch):  # noqa: F811
    real = fb._render_child

    def child(app_class, root, env, argv, log, memory_mb):
        if "--student=bob" in argv:
            time.sleep(600)                   # a notebook that never finishes rendering
        real(app_class, root, env, argv, log, memory_mb)

    monkeypatch.setattr(fb, "_render_child", child)
    monkeypatch.setattr(fb, "RENDER_TIMEOUT", 8)
    t0 = time.monotonic()
    pages = fb.feedback(course, [A], students=["ann", "bob"], jobs=2)
    wall = time.monotonic() - t0
    by = {p.parent.parent.name: p for p in pages}
    assert by["ann"].name == f"{A}.html" and "Right idea" in by["ann"].read_text()
    assert by["bob"].name == "GRADING_PROBLEM.html", pages
    assert "The feedback page took too long" in by["bob"].read_text()
    assert sorted(p.name for p in (course.feedback / "bob" / A).glob("*.html")) == ["GRADING_PROBLEM.html"]
    _policy(by["bob"].read_text())
    assert wall < 60, wall
