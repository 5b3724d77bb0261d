"""``./course instructor STEP``: the one command-line entry point; it dispatches to one module per step.

    release [ASSIGNMENT ...] [--public STAGE ...]   student versions + gradebook entries + student bundles
            [--exchange ROOT [--exchange-course ID]]  class hub: also into its exchange (remembered)
    collect [PATH ...] [--no-exchange] [--lms L]   folders or LMS zip exports, and the hub's exchange if tied to one
    autograde [ASSIGNMENT ...]                     sandboxed, smoke profile, tests judged outside the kernel
    feedback [ASSIGNMENT ...] [--zip]              HTML per student
    grades [--out FILE.csv] [--format canvas|moodle --roster R.csv]   CSV export, or an LMS import file
    grades --lti [--lti-state DIR] [--lti-zero-missing] [--assignment A]   class hub: scores to the LMS (LTI 1.3 AGS)
    roster FILE.csv | status | points | doctor
    grade-one SUBMISSION --assignment A            one submission on its own -> Gradescope's results.json
    export-autograder A                            Gradescope's autograder zip (setup.sh, run_autograder)
    lab [--port N] [--no-browser] [-- JUPYTER ARGS]  JupyterLab on the course directory, with the formgrader

Library code raises ``InstructorError``; only this module prints it and exits.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from .coursedir import COURSE_DIR_ENV, CourseDir, listdir, parse_ts
from .errors import InstructorError


def status_text(course: CourseDir) -> str:
    from .autograde import needs_grading
    from .bundle import public_stages
    lines = [f"course directory: {course.root}", f"source notebooks: {course.origin}",
             f"public stages: {', '.join(sorted(public_stages(course))) or 'none'}"]
    for a in sorted(set(course.source_assignments()) | set(course.released_assignments()) | set(listdir(course.origin))):
        subs = course.submissions(a)
        graded = [s for s in subs if (course.autograded / s / a).is_dir()]
        stale = [s for s in subs if needs_grading(course, a, s)]
        fb = [s for s in subs if any((course.feedback / s / a).glob("*.html"))]
        lines.append(f"  {a:<28} released={'yes' if (course.release / a).exists() else 'no ':<3} "
                     f"submitted={len(subs):<4} autograded={len(graded):<4} to-grade={len(stale):<4} feedback={len(fb)}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="./course instructor",
                                description="Release, collect, autograde, feedback and grades for the DDPM course "
                                            "(a thin layer over nbgrader; see docs/INSTRUCTORS.md).")
    p.add_argument("--course-dir", help=f"grading course directory (default: ${COURSE_DIR_ENV} or <repo>/grading)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="step", required=True)
    _add = sub.add_parser
    sub.add_parser = lambda *a, **k: _add(*a, parents=[common], **k)

    s = sub.add_parser("release", help="snapshot notebooks/source, generate the student versions and bundles")
    s.add_argument("assignments", nargs="*")
    s.add_argument("--force", action="store_true", help="regenerate even if the source did not change")
    s.add_argument("--public", action="append", default=[], metavar="STAGE",
                   help="declare a stage's reference code public (after its deadline); remembered; repeatable")
    s.add_argument("--exchange", metavar="ROOT", help="class hub: also release into nbgrader's exchange at ROOT (the "
                   "hub's DDPM_HUB_EXCHANGE); remembered, so collect and feedback use it too")
    s.add_argument("--exchange-course", metavar="ID", help="with --exchange: the hub's course id (DDPM_HUB_COURSE_ID; "
                   "default: that variable, else ddpm-course)")

    s = sub.add_parser("collect", help="file submissions (folders in nbgrader layout, LMS folders or zips)")
    s.add_argument("paths", nargs="*", help="exports to collect (none: only the hub's exchange, if the course has one)")
    s.add_argument("--no-exchange", action="store_true", help="do not take submissions from the hub's exchange")
    s.add_argument("--assignment", help="only collect this assignment")
    s.add_argument("--student-regex", help="regex with a (?P<student>...) group, matched against each top-level "
                   "file or folder name of an export (never a path inside a student's zip)")
    s.add_argument("--roster", help="CSV with an id column (optional lms_id/name/email) to map LMS names to ids")
    s.add_argument("--lms", choices=("canvas", "moodle", "nbgrader"), help="the layout of the exports given (default: "
                   "decided per export from its names; an export that mixes them, or whose names read both ways, "
                   "is not read without it)")
    s.add_argument("--timestamp", help="submission time to record (default: the file's time in the zip/folder)")
    s.add_argument("--dry-run", action="store_true")

    s = sub.add_parser("autograde", help="run the notebooks (smoke profile, sandboxed) and record the grades")
    s.add_argument("assignments", nargs="*")
    s.add_argument("--student", action="append", help="only these students (repeatable)")
    s.add_argument("--force", action="store_true", help="regrade even submissions that did not change")
    s.add_argument("--jobs", type=int, default=max(1, min(4, (os.cpu_count() or 2) // 2)),
                   help="nbgrader processes grading in parallel (default: half the CPU cores, at most 4)")
    s.add_argument("--cell-timeout", type=int, help="seconds per code cell")
    s.add_argument("--notebook-timeout", type=int, help="seconds per notebook")
    s.add_argument("--no-sandbox", action="store_true", help="run student code unconfined (trusted notebooks only)")

    s = sub.add_parser("feedback", help="write an HTML feedback page per student and assignment")
    s.add_argument("assignments", nargs="*")
    s.add_argument("--student", action="append")
    s.add_argument("--zip", action="store_true", help="also zip each assignment's pages (<student>/<page>.html)")

    s = sub.add_parser("grades", help="export the gradebook to CSV, or an LMS's gradebook import file")
    s.add_argument("--out", help="where to write the latest CSV (default grading/grades.csv, grading/grades-<format>.csv)")
    s.add_argument("--format", choices=["csv", "canvas", "moodle"], default="csv",
                   help="csv: the course's CSV (default); canvas / moodle: that LMS's gradebook import file")
    s.add_argument("--roster", help="canvas / moodle: the roster CSV (as for collect) with each student's LMS ids")
    s.add_argument("--lti", action="store_true", help="class hub: post each student's score to the LMS line item "
                   "of the assignment launched from (LTI 1.3 AGS; ddpm_instructor/lti.py); no submission, no score")
    s.add_argument("--lti-state", default=os.environ.get("DDPM_HUB_STATE", "/srv/ddpm-hub"),
                   help="--lti: the hub's state folder (DDPM_HUB_STATE; holds lti/launches.json, lti/tool_key.pem)")
    s.add_argument("--lti-zero-missing", action="store_true", help="--lti: send 0 for a student with no submission")
    s.add_argument("--assignment", action="append", help="--lti: only this assignment (repeatable; default: every "
                   "assignment the LMS launched the hub from)")

    s = sub.add_parser("roster", help="import students (CSV: id,first_name,last_name,email) into the gradebook")
    s.add_argument("csv")
    sub.add_parser("status", help="what is released, collected, graded")
    s = sub.add_parser("points", help="the points of every graded cell")
    s.add_argument("assignments", nargs="*")
    s = sub.add_parser("doctor", help="check nbgrader and the sandbox: the mode in force and what a kernel reaches")
    s.add_argument("--mode", choices=["auto", "bwrap", "user", "off"], help="check this sandbox mode (default auto)")

    s = sub.add_parser("grade-one", help="grade one submission on its own and write Gradescope's results.json")
    s.add_argument("submission", help="the notebook, or a folder holding it (Gradescope: /autograder/submission)")
    s.add_argument("--assignment", required=True)
    s.add_argument("--out", default="results.json")
    s.add_argument("--public", action="append", default=[], metavar="STAGE")
    s.add_argument("--source", help="the source notebooks (default: notebooks/source)")
    s.add_argument("--visibility", default="after_published", help="of the graded tests' results on Gradescope")
    s.add_argument("--cell-timeout", type=int, help="seconds per code cell (default: the assignment's)")
    s.add_argument("--notebook-timeout", type=int, help="seconds per notebook")
    s.add_argument("--no-sandbox", action="store_true", help="run student code unconfined (trusted notebooks only)")

    s = sub.add_parser("export-autograder", help="build Gradescope's autograder zip (setup.sh, run_autograder)")
    s.add_argument("assignment")
    s.add_argument("--public", action="append", default=[], metavar="STAGE")
    s.add_argument("--out", help="default: grading/gradescope/<assignment>.zip")
    s.add_argument("--visibility", default="after_published")

    s = sub.add_parser("lab", help="JupyterLab on the course directory with nbgrader's formgrader (manual grading)")
    s.add_argument("--port", type=int, help="the server's port (default: Jupyter's, 8888 or the next free one)")
    s.add_argument("--no-browser", action="store_true", help="do not open a browser")
    s.add_argument("jupyter", nargs=argparse.REMAINDER, help="after --: more options for `jupyter lab`")
    return p


def _release(course: CourseDir, args) -> int:
    from .release import release
    release(course, args.assignments, force=args.force, public=args.public, exchange=args.exchange,
            exchange_course=args.exchange_course)
    return 0


def _collect(course: CourseDir, args) -> int:
    from .collect import collect
    from .exchange_io import configured
    if not args.paths and (args.no_exchange or configured(course) is None):
        raise InstructorError("nothing to collect: give the exports (folders or zips), or tie the course to the "
                              "class hub's exchange once with `release --exchange ROOT`")
    when = parse_ts(args.timestamp) if args.timestamp else None
    if args.timestamp and when is None:
        raise InstructorError("--timestamp: use 'YYYY-MM-DD HH:MM:SS' (UTC)")
    report = collect(course, args.paths, assignment=args.assignment, student_regex=args.student_regex,
                     roster=args.roster, when=when, dry_run=args.dry_run, exchange=not args.no_exchange,
                     lms=args.lms)
    print(report.text())
    return 1 if report.unmatched else 0


def _autograde(course: CourseDir, args) -> int:
    from .autograde import autograde
    res = autograde(course, args.assignments, students=args.student, force=args.force, jobs=args.jobs)
    return 1 if any(not r.ok for r in res) else 0


def _feedback(course: CourseDir, args) -> int:
    from .feedback import feedback
    feedback(course, args.assignments, students=args.student, zip_it=args.zip)
    return 0


def _grades(course: CourseDir, args) -> int:
    from .grades import grades, lms_export
    if args.lti:
        from .lti import post_grades
        state = Path(args.lti_state) / "lti"
        posts = post_grades(course, state / "launches.json", state / "tool_key.pem", zero_missing=args.lti_zero_missing,
                            assignments=args.assignment)
        for p in posts:
            print(f"  {p.assignment:<24} {p.student:<24} {'sent' if p.posted else 'not sent'}: {p.detail}")
        print(f"sent {sum(p.posted for p in posts)} scores to the LMS ({len(posts)} students x assignments)")
        return 0
    if args.format != "csv":
        report = lms_export(course, args.format, args.roster, args.out)
        print(report.text())
        return 1 if report.unmatched else 0
    main_csv, detail, rows = grades(course, args.out)
    for r in rows[:60]:
        print(f"  {r['assignment']:<24} {r['student_id']:<24} {r['score']:>6g}/{r['max_score']:<4g} {r['status']}")
    if len(rows) > 60:
        print(f"  ... {len(rows) - 60} more rows")
    print(f"wrote {main_csv} and {detail} (every export is also kept in {course.exports})")
    return 0


def _roster(course: CourseDir, args) -> int:
    r = course.nbgrader("db", "student", "import", str(Path(args.csv).resolve()))
    print((r.stdout + r.stderr).strip()[-3000:])
    return r.returncode


def _status(course: CourseDir, args) -> int:
    print(status_text(course))
    return 0


def _points(course: CourseDir, args) -> int:
    for a in args.assignments or course.released_assignments():
        auto, written = course.points(a), course.points(a, written=True)
        ta, tw = sum(r[2] for r in auto), sum(r[2] for r in written)
        print(f"{a}: {ta + tw:g} points ({ta:g} autograded, {tw:g} written, graded by hand in the formgrader)")
        for kind, rows in (("autograded", auto), ("written", written)):
            for nb, gid, pts in rows:
                print(f"  {nb:<28} {gid:<40} {pts:>3g}  {kind}")
    return 0


def _grade_one(course: CourseDir, args) -> int:
    from .gradescope import grade_one
    res = grade_one(args.submission, args.out, args.assignment, public=args.public, source=args.source,
                    sandbox="off" if args.no_sandbox else None, visibility=args.visibility,
                    cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout)
    print(f"{res['score']:g}/{sum(t['max_score'] for t in res['tests']):g} -> {args.out}")
    return 0


def _export_autograder(course: CourseDir, args) -> int:
    from .gradescope import export_autograder
    z = export_autograder(course, args.assignment, public=args.public, out=args.out, visibility=args.visibility)
    print(f"wrote {z}: upload it as the assignment's autograder on Gradescope")
    return 0


def _doctor(course: CourseDir, args) -> int:
    from .sandbox import doctor
    nbg = subprocess.run([sys.executable, "-m", "nbgrader", "--version"], capture_output=True, text=True)
    print(f"nbgrader: {nbg.stdout.strip()}")
    print(f"course directory: {course.root}")
    mode, checks = doctor(getattr(args, "mode", None) or course.sandbox)
    fallback = {"user": " (the fallback: an unprivileged uid, no namespaces)", "off": " (NO sandbox)"}.get(mode, "")
    print(f"sandbox mode in force: {mode}{fallback}; what a kernel in it could reach:")
    for c in checks:
        print(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail else ""))
    from .lab import protection_checks
    browser = protection_checks(course)
    print("the instructor's browser (formgrader, feedback): what keeps a submission's HTML and scripts out of it:")
    for c in browser:
        print(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}" + (f": {c.detail}" if c.detail else ""))
    return 1 if mode in ("none", "off") or not all(c.ok for c in checks[1:] + browser) else 0


def _lab(course: CourseDir, args) -> int:
    from .lab import instructor_lab
    extra = args.jupyter[1:] if args.jupyter[:1] == ["--"] else args.jupyter
    instructor_lab(course, ([f"--port={args.port}"] if args.port else []) + (["--no-browser"] if args.no_browser else [])
                   + extra)
    return 0


# step name -> function(course, args) -> exit code
STEPS = {"release": _release, "collect": _collect, "autograde": _autograde, "feedback": _feedback,
         "grades": _grades, "roster": _roster, "status": _status, "points": _points, "grade-one": _grade_one,
         "export-autograder": _export_autograder, "doctor": _doctor, "lab": _lab}


def run(args) -> int:
    course = CourseDir(root=args.course_dir, cell_timeout=getattr(args, "cell_timeout", None),
                       notebook_timeout=getattr(args, "notebook_timeout", None),
                       sandbox="off" if getattr(args, "no_sandbox", False) else None)
    return STEPS[args.step](course, args)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except InstructorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
