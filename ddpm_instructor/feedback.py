"""Step 4: ``feedback`` -- an HTML page per student and assignment (nbgrader's), each graded test shown by its
result and message only (``GuardedExecute`` replaced its code), each written answer with the points and comment
given in the formgrader; a plain page when a submission could not be graded."""
from __future__ import annotations

import html
import zipfile
from pathlib import Path

from .coursedir import CourseDir, stamp
from .records import read_notes


def _html(text) -> str:
    return html.escape(str(text))


def feedback_zip(course, assignment: str) -> Path:
    """All feedback pages of one assignment in a zip, ``<student>/<page>.html``, for an LMS upload."""
    course.exports.mkdir(parents=True, exist_ok=True)
    dest = course.exports / f"feedback-{assignment}-{stamp()}.zip"
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for page in sorted(course.feedback.glob(f"*/{assignment}/*.html")):
            zf.write(page, f"{page.parent.parent.name}/{page.name}")
    return dest

def feedback(course: CourseDir, assignments=None, students=None, zip_it=False) -> list[Path]:
    made = []
    for a in assignments or course.released_assignments():
        subs = [s for s in (students or course.submissions(a))]
        if not subs:
            continue
        graded = [s for s in subs if (course.autograded / s / a).is_dir()]
        if graded:                                  # one nbgrader process for the whole class
            everyone = set(course.submissions(a))
            exclude = ",".join(sorted(everyone - set(graded)))
            log = course.logs / "feedback" / a / f"{stamp()}.log"
            args = ["generate_feedback", a, "--force"] + (
                [f"--CourseDirectory.student_id_exclude={exclude}"] if exclude else [])
            course.nbgrader(*args, log=log)
            for s in graded:
                files = list((course.feedback / s / a).glob("*.html"))
                if not files:
                    files = [failure_page(course, s, a, "The feedback page could not be rendered; your instructor "
                                                f"has been told (see {log.relative_to(course.root)}).")]
                made += files
        for s in sorted(set(subs) - set(graded)):
            made.append(failure_page(course, s, a, "Your submission could not be graded automatically. "
                                           "Your instructor has been told and will grade it by hand."))
        course.say(f"{a}: feedback for {len(subs)} student(s) in {course.feedback}/<student>/{a}/")
        waiting = written_to_grade(course, a, graded)
        if waiting:
            course.say(f"  {len(waiting)} of them still have written answers to grade ({', '.join(waiting[:10])}"
                       f"{', ...' if len(waiting) > 10 else ''}): their pages show those answers without points. "
                       "Grade them in the formgrader (./course instructor lab), then run feedback again.")
        if zip_it:
            course.say(f"{a}: all pages zipped in {feedback_zip(course, a)}")
    return made

def written_to_grade(course, assignment: str, students) -> list[str]:
    """The students whose written answers of ``assignment`` wait for the formgrader."""
    from .grades import submission_score
    with course.gradebook() as gb:
        return [s for s in sorted(students) if submission_score(course, assignment, s, gb).pending]


def failure_page(course, s, a, msg) -> Path:
    d = course.feedback / s / a
    d.mkdir(parents=True, exist_ok=True)
    notes = read_notes(course.notes, a, s)
    items = "".join(f"<li>{_html(n)}</li>" for n in notes)
    p = d / "GRADING_PROBLEM.html"
    p.write_text(f"<html><body><h1>{_html(a)}: feedback for {_html(s)}</h1><p>{_html(msg)}</p>"
                 f"<ul>{items}</ul></body></html>")
    return p
