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


def test_with_a_roster_a_canvas_name_ending_in_another_users_id_is_not_filed_as_that_user(course, tmp_path):
    """The victim (user 48213) handed nothing in; the attacker (user 50977, 'Mallory Roe' on the roster) renamed
    themselves ``roe_48213``.  ``roe_48213_50977_9921511_<file>`` reads as user 48213 named 'roe', whose roster name
    is John Doe; read as user 50977 it names another student on the roster.  Such a file is not filed as the
    victim: it is refused, saying both readings."""
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name\ns-doe,48213,John Doe\ns-roe,50977,Mallory Roe\n")
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({f"roe_48213_50977_9921511_{A}.ipynb": (version("attacker"), (2026, 11, 20, 13, 0))}))
    report = col.collect(course, [export], roster=roster)
    assert "s-doe" not in students(course), report.text()
    (why,) = [w for f, w in report.unmatched if "roe_48213" in f]
    assert "48213" in why and "50977" in why, why


def test_with_a_roster_a_legit_canvas_file_whose_own_name_starts_with_numbers_is_filed(course, tmp_path):
    """The other side: John Doe (48213) names his file ``2_3_final.ipynb``; the other reading (user 9921034) is on
    no roster row, and the name matches his row: filed as him."""
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,name\ns-doe,48213,John Doe\ns-roe,50977,Mallory Roe\n")
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({"doejohn_48213_9921034_2_3_final.ipynb": (version("john"), (2026, 11, 20, 13, 0))}))
    report = col.collect(course, [export], roster=roster)
    assert filed(course, "s-doe") == version("john"), report.text()


def test_the_collision_of_one_canvas_id_under_two_names_says_what_to_check(course, tmp_path):
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({
        f"doejohn_48213_9921034_{A}.ipynb": (version("victim"), (2026, 11, 20, 12, 0)),
        f"roe_48213_50977_9921511_{A}.ipynb": (version("attacker"), (2026, 11, 20, 13, 0)),
    }))
    report = col.collect(course, [export])
    (c,) = report.collisions
    assert c.identities == ["Canvas user 48213 as 'doejohn'", "Canvas user 48213 as 'roe'"], c
    assert all("reads as another user's id" in why for _, why in report.unmatched), report.text()
