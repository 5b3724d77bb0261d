"""Hostile students against collect's identity: a Canvas name is the student's to choose (Canvas lets users edit
their name; its export keeps letters, digits and ``_``), so a name ending in ``_<digits>`` must never make a file
someone else's.  Fast: no kernel, no nbgrader."""
from __future__ import annotations

import pytest

from ddpm_instructor import collect as col

from test_collect import A, course, filed, released, students, version, zip_bytes  # noqa: F401 - fixtures


def test_a_canvas_name_ending_in_another_users_id_does_not_replace_that_users_submission(course, tmp_path):
    """Victim: Canvas user 48213.  The attacker (user 50977) set their sortable name to ``roe_48213``, so Canvas
    writes ``roe_48213_50977_<file id>_<file>``: read left to right that names user 48213.  The victim's own
    notebook must stay filed as theirs; the clash is reported, never filed over the victim's work."""
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({
        f"doejohn_48213_9921034_{A}.ipynb": (version("victim"), (2026, 11, 20, 12, 0)),
        f"roe_48213_50977_9921511_{A}.ipynb": (version("attacker"), (2026, 11, 20, 13, 0)),
    }))
    report = col.collect(course, [export])
    victim = course.submitted / "canvas-48213" / A
    assert not victim.exists() or filed(course, "canvas-48213") == version("victim"), report.text()
    assert not course.archive.exists() or not list(course.archive.rglob("*.ipynb")), report.text()
    assert report.collisions or any("48213" in why for _, why in report.unmatched), report.text()
