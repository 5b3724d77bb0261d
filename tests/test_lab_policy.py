"""ddpm_instructor.lab's policy for the pages that show a submission (the browser side of it is in
tests/test_browser_attacks.py), and the protections `./course instructor doctor` reports.  Under a second."""
from __future__ import annotations

import base64
import hashlib

from ddpm_instructor import feedback
from ddpm_instructor.coursedir import CourseDir
from ddpm_instructor.lab import (SANDBOX_POLICY, merge_policies, page_policy, protection_checks,
                                 write_lab_config)

SERVER = "frame-ancestors 'self'; report-uri /api/security/csp-report"
PAGE = (b"<html><head><script src='/formgrader/static/js/formgrade.js'></script>"
        b"<script type=\"text/javascript\">\nvar submission_id = \"abc\";\n</script></head>"
        b"<body><script>fetch('/api/terminals', {method: 'POST'})</script></body></html>")


def _hash(text: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode() + "'"


def test_the_submission_page_runs_only_the_formgraders_scripts():
    policy = page_policy("/formgrader/submissions/abc/", "http://127.0.0.1:8888", "/", PAGE)
    script = next(d for d in policy.split(";") if d.strip().startswith("script-src")).split()
    assert "http://127.0.0.1:8888/formgrader/static/" in script
    assert _hash(b"\nvar submission_id = \"abc\";\n") in script                 # the template's, in <head>
    assert _hash(b"fetch('/api/terminals', {method: 'POST'})") not in script      # the student's, in <body>
    assert _hash(b"toggle_name(true);") in script and "'unsafe-hashes'" in script
    assert not {"'self'", "'unsafe-inline'", "'unsafe-eval'", "*"} & set(script), script
    for d in ("object-src 'none'", "frame-src 'none'", "base-uri 'none'", "form-action 'none'"):
        assert d in policy


def test_scoped_by_path_under_a_base_url():
    base = "/user/prof/"
    assert page_policy("/user/prof/formgrader/submissions/abc", "http://h", base, PAGE).startswith("default-src")
    assert page_policy("/user/prof/formgrader/submissions/abc/notes.html", "http://h", base, None) == SANDBOX_POLICY
    assert page_policy("/user/prof/nbconvert/html/submitted/s/a/a.ipynb", "http://h", base, None) == SANDBOX_POLICY
    for path in ("/user/prof/lab", "/user/prof/formgrader/gradebook/a/a", "/user/prof/api/contents",
                 "/user/prof/formgrader/submissions/components/bootstrap/css/bootstrap.min.css"):
        assert page_policy(path, "http://h", base, None) is None, path


def test_ours_replaces_the_servers_directive_of_the_same_name():
    merged = merge_policies(SERVER + "; sandbox allow-scripts", SANDBOX_POLICY)
    assert "allow-scripts" not in merged and merged.startswith(SERVER + "; sandbox;")


def test_the_lab_config_enables_the_policy(tmp_path):
    import json
    write_lab_config(tmp_path)
    conf = json.loads((tmp_path / "jupyter_server_config.d" / "ddpm-instructor.json").read_text())
    assert conf["ServerApp"]["jpserver_extensions"]["ddpm_instructor.lab"] is True


def test_doctor_reports_feedback_pages_written_without_the_policy(tmp_path):
    course = CourseDir(root=tmp_path / "grading", quiet=True)
    page = course.feedback / "s1" / "02_forward_closed_form" / "02_forward_closed_form.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html><head><title>x</title></head><body>old page</body></html>")
    checks = {c.name: c for c in protection_checks(course)}
    assert all(c.ok for n, c in checks.items() if n != "every feedback page written carries it"), checks
    old = checks["every feedback page written carries it"]
    assert not old.ok and old.detail == "1 of 1 pages were written without it: run feedback again"
    feedback.add_csp(page)
    assert all(c.ok for c in protection_checks(course))
