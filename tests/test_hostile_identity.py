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


def test_the_file_whose_name_reads_as_a_submitting_user_is_held_back_and_that_user_keeps_theirs(course, tmp_path):
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({
        f"doejohn_48213_9921034_{A}.ipynb": (version("victim"), (2026, 11, 20, 12, 0)),
        f"roe_48213_50977_9921511_{A}.ipynb": (version("attacker"), (2026, 11, 20, 13, 0)),
    }))
    report = col.collect(course, [export])
    assert students(course) == {"canvas-48213"} and filed(course, "canvas-48213") == version("victim"), report.text()
    (why,) = [w for f, w in report.unmatched if "roe_48213" in f]
    assert "user 48213 (named 'roe') or user 50977 (named 'roe_48213')" in why and "--roster" in why, why


# ---------------------------------------------------------------- a user who handed in nothing, without a roster
# Canvas writes a file as <sortable name, downcased, non-word characters removed>[_LATE]_<user id>_<attachment id>_
# <the student's own file name> (lib/content_zipper.rb); the attacker, Canvas user 50977, renamed themselves
# "Roe_48213" (their sortable name becomes roe_48213): the victim, user 48213, handed nothing in.
SPOOF = f"roe_48213_50977_9921511_{A}.ipynb"
SPOOF_LATE = f"roe_48213_LATE_50977_9921512_{A}-1.ipynb"      # handed in again, after the due date
GRADEBOOK = ("Student,ID,SIS User ID,SIS Login ID,Section,HW 2 (1234)\n"
             "    Points Possible,,,,,12.00\n"
             '"Doe, John",48213,S1001,jdoe,CS101,\n'
             '"Roe_48213, Mallory",50977,S1002,mroe,CS101,\n')


def test_without_a_roster_a_name_that_reads_as_a_non_submitting_user_is_held_back(course, tmp_path):
    """Read left to right, the attacker's file is user 48213's, who handed in nothing: nothing would say otherwise.
    It is filed as nobody; the summary says how many were held back and that --roster tells them apart.  Handed in
    late, Canvas's LATE stands between the name and the user id, and the file reads only as the attacker's."""
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({SPOOF: (version("attacker"), (2026, 11, 20, 13, 0)),
                                  SPOOF_LATE: (version("attacker late"), (2026, 11, 22, 13, 0))}))
    report = col.collect(course, [export])
    assert students(course) == {"canvas-50977"} and filed(course, "canvas-50977") == version("attacker late"), \
        report.text()
    assert report.held_back == [f"submissions.zip:{SPOOF}"], report.text()
    text = report.text()
    assert "1 file(s) held back" in text and "--roster" in text and "48213" in text and "50977" in text, text


def test_with_the_canvas_gradebook_as_roster_the_one_reading_in_the_course_is_taken(course, tmp_path):
    """Canvas's gradebook export as the roster: the attacker's file reads as two users of the course (refused, check
    in Canvas); an honest file whose own name starts with numbers reads as one user of the course (filed); a name
    that reads as a user not in the course and one who is: the one in the course."""
    roster = tmp_path / "gradebook.csv"
    roster.write_text(GRADEBOOK)
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({
        SPOOF: (version("attacker"), (2026, 11, 20, 13, 0)),
        "doejohn_48213_9921034_2_3_final.ipynb": (version("john"), (2026, 11, 20, 13, 0)),
    }))
    report = col.collect(course, [export], roster=roster)
    assert students(course) == {"canvas-48213"} and filed(course, "canvas-48213") == version("john"), report.text()
    (why,) = [w for f, w in report.unmatched if SPOOF in f]
    assert "user 48213 (canvas-48213) or user 50977 (canvas-50977)" in why and "check in Canvas" in why, why
    roster.write_text(GRADEBOOK.replace('"Doe, John",48213,S1001,jdoe,CS101,\n', ""))     # 48213 not in the course
    report = col.collect(course, [export], roster=roster)
    assert "canvas-50977" in students(course) and filed(course, "canvas-50977") == version("attacker"), report.text()


def test_a_legit_canvas_export_has_one_reading_per_file():
    """Real-shaped names: Canvas's ids never start with 0, its names are downcased (LATE is Canvas's own), so the
    course's file names (02_..., resubmissions -1) and LATE give one reading."""
    for entry in ["doejohn_12345_678_02_forward_closed_form.ipynb", "doejohn_LATE_12345_678_02_forward_closed_form.ipynb",
                  "müllerzoë_12345_679_02_forward_closed_form-1.ipynb", "anon_Xy12z_678_04_training.ipynb",
                  "LATE_anon_Xy12z_678_hw 2 FINAL (1).ipynb"]:
        assert len(col.canvas_readings(entry)) == 1, (entry, col.canvas_readings(entry))
    (late,) = col.canvas_readings("doejohn_LATE_12345_678_02_forward_closed_form.ipynb")
    assert late.late and late.lms_id == "12345" and late.file == "02_forward_closed_form.ipynb"
    assert [o.lms_id for o in col.canvas_readings(SPOOF)] == ["48213", "50977"]


# ---------------------------------------------------------------- a Canvas name that reads as a Moodle one (H1 #2)
# Canvas user 50977 set their sortable name to "mallory_48213_assignsubmission_file" (all word characters: Canvas
# keeps it as is), so Canvas writes the file below; read as a Moodle file name it is participant 48213's.  The
# export is Canvas's (the victim's file reads only as Canvas), so every entry is read as Canvas only, and a Canvas
# roster's user 48213 is never a Moodle participant 48213.
MOODLE_SHAPED = f"mallory_48213_assignsubmission_file_50977_9921511_{A}.ipynb"
VICTIM = f"doejohn_48213_9921034_{A}.ipynb"


def test_a_canvas_name_shaped_as_moodles_is_read_as_canvas_in_a_canvas_export(course, tmp_path):
    roster = tmp_path / "gradebook.csv"
    roster.write_text(GRADEBOOK)
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({VICTIM: (version("victim"), (2026, 11, 20, 12, 0)),
                                  MOODLE_SHAPED: (version("attacker"), (2026, 11, 20, 13, 0))}))
    report = col.collect(course, [export], roster=roster)
    assert filed(course, "canvas-48213") == version("victim"), report.text()          # the victim keeps theirs
    assert filed(course, "canvas-50977") == version("attacker"), report.text()        # the attacker is themselves
    assert not report.collisions and not report.unmatched, report.text()


def test_a_lone_file_that_reads_as_canvas_and_as_moodle_is_not_guessed(course, tmp_path):
    """Nothing in the export tells which LMS wrote it: its files are not read (not filed as Moodle participant 48213
    nor, with a Canvas roster, as Canvas user 48213); the report says to name the LMS, and --lms canvas reads it."""
    roster = tmp_path / "gradebook.csv"
    roster.write_text(GRADEBOOK)
    export = tmp_path / "submissions.zip"
    export.write_bytes(zip_bytes({MOODLE_SHAPED: (version("attacker"), (2026, 11, 20, 13, 0))}))
    for given in (None, roster):
        report = col.collect(course, [export], roster=given)
        assert students(course) == set(), report.text()
        (why,) = [w for f, w in report.unmatched if MOODLE_SHAPED in f]
        assert why.startswith(col.UNDECIDED) and "--lms canvas or --lms moodle" in why, why
        assert "1 file(s) not read" in report.text(), report.text()
    report = col.collect(course, [export], roster=roster, lms="canvas")
    assert students(course) == {"canvas-50977"} and filed(course, "canvas-50977") == version("attacker"), \
        report.text()


def test_a_moodle_participant_id_never_matches_a_canvas_rosters_user_id(course, tmp_path):
    """Canvas's gradebook CSV as --roster of a Moodle export (a mistake, or two LMSs in one course): Moodle's
    participant 48213 is not Canvas user 48213 (John Doe)."""
    from ddpm_instructor.roster import load_roster
    roster = tmp_path / "gradebook.csv"
    roster.write_text(GRADEBOOK)
    r = load_roster(roster)
    assert r.by_lms_id("48213", "Canvas").id == "canvas-48213" and r.by_lms_id("48213", "Moodle") is None
    export = tmp_path / "moodle.zip"
    export.write_bytes(zip_bytes({f"Mallory Roe_48213_assignsubmission_file/{A}.ipynb": (version("m"),
                                                                                           (2026, 11, 20, 13, 0))}))
    report = col.collect(course, [export], roster=roster)
    assert students(course) == set(), report.text()
    assert [why for _, why in report.unmatched] == ["Moodle participant 48213 ('Mallory Roe') is not on the roster: "
                                                   "add 48213 as the lms_id of their row"], report.text()


def test_a_roster_says_whose_ids_its_lms_ids_are(tmp_path):
    from ddpm_instructor.errors import InstructorError
    from ddpm_instructor.roster import load_roster
    roster = tmp_path / "roster.csv"
    roster.write_text("id,lms_id,lms,name\ns-doe,48213,canvas,John Doe\ns-zoe,1843207,Moodle,Zoë Müller\n"
                      "s-any,777,,Al Any\n", encoding="utf-8")
    r = load_roster(roster)
    assert r.by_lms_id("48213", "Canvas").id == "s-doe" and r.by_lms_id("48213", "Moodle") is None
    assert r.by_lms_id("1843207", "Moodle").id == "s-zoe" and r.by_lms_id("1843207", "Canvas") is None
    assert r.by_lms_id("777", "Canvas").id == r.by_lms_id("777", "Moodle").id == "s-any"      # not said: either
    roster.write_text("id,lms_id,lms\ns-doe,48213,blackboard\n")
    with pytest.raises(InstructorError, match="row 2: lms 'blackboard' is not canvas or moodle"):
        load_roster(roster)
