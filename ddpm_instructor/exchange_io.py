"""The class hub's exchange (nbgrader's, closed by hub/exchange.py), as ``./course instructor`` uses it.

A course directory is tied to a hub's exchange once, by ``./course instructor release --exchange ROOT
[--exchange-course ID]`` (remembered in ``<course>/exchange.json``; the values are the hub's DDPM_HUB_EXCHANGE and
DDPM_HUB_COURSE_ID).  From then on:

* ``release`` also puts each assignment's student version into the exchange's ``outbound/`` (:func:`release`), where
  the students' Assignment List fetches it;
* ``collect`` also takes what students submitted through the Assignment List (:func:`stage_submissions`): the
  submissions that :class:`hub.exchange.OwnerCheckedExchangeCollect` chooses (one per student, in a folder owned by
  the OS user its name claims: the identity is the file system's, never a name in the notebook) are copied into
  collect's spool folder as ``exchange-<course>/<student>/<assignment>/``, one folder per student, and go the same
  way as every other export (kept in ``inbox/``, sanitised, metadata repaired, refused file by file);
* ``feedback`` returns each student's pages through the exchange's ``feedback/`` (:func:`return_feedback`), named by
  nbgrader's hash of their submission's secret, so the student's Assignment List offers "Fetch Feedback".

A student owns their submission folder and can change it after submitting, so it is read as untrusted: nothing is
followed through a link (``O_NOFOLLOW``, ``os.fwalk``), only regular ``.ipynb`` files are taken, each capped like any
handed-in notebook, and the time recorded is the latest change the collector sees (the folder's and the notebooks'
ctime, which no one can set back), not a ``timestamp.txt`` the student's own server wrote.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import os
import pwd
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from .coursedir import REPO, CourseDir
from .errors import InstructorError

CONFIG_FILE = "exchange.json"
DEFAULT_COURSE_ID = "ddpm-course"        # hub/settings.py's default DDPM_HUB_COURSE_ID
MAX_NOTEBOOKS = 20                       # notebooks taken from one submission folder (an assignment has 1)
MAX_SECRET_BYTES = 1024
SECRET = re.compile(r"[0-9a-f]{16,256}")
RECORDS = "exchange"                     # <course>/exchange/<assignment>/<student>.json: what collect took


class ExchangeIOError(InstructorError):
    """The exchange cannot be used as asked (not prepared by the hub, an unknown folder)."""


@dataclass(frozen=True)
class Exchange:
    root: Path
    course_id: str

    @property
    def course(self) -> Path:
        return self.root / self.course_id


@dataclass(frozen=True)
class Taken:
    """What collect took from one student's exchange submission (saved for ``feedback``)."""
    student: str
    assignment: str
    folder: str                 # the submission folder's name in inbound/
    secret: str                 # its submission_secret.txt ("" when unusable: then no feedback through the exchange)
    seen: str                   # the latest change the collector saw, ISO 8601 UTC


@dataclass(frozen=True)
class Returned:
    student: str
    assignment: str
    pages: int
    why: str                    # "" when returned, else why not


def _hub_exchange():
    """hub/exchange.py: the ``hub`` package sits beside this one in the checkout (it is not installed)."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    from hub import exchange
    return exchange


# ---------------------------------------------------------------- which exchange
def configure(course: CourseDir, root, course_id: str | None = None) -> Exchange:
    """Tie ``course`` to the exchange at ``root`` (remembered); the hub must have prepared it."""
    ex = Exchange(Path(root).resolve(), course_id or os.environ.get("DDPM_HUB_COURSE_ID") or DEFAULT_COURSE_ID)
    missing = [d for d in ("outbound", "inbound", "feedback") if not (ex.course / d).is_dir()]
    if missing:
        raise ExchangeIOError(f"{ex.course} has no {', '.join(missing)}/: not an exchange the hub prepared. Give the "
                              "hub's DDPM_HUB_EXCHANGE as --exchange (and its DDPM_HUB_COURSE_ID as --exchange-course)"
                              ", after ./course hub has run once")
    course.root.mkdir(parents=True, exist_ok=True)
    (course.root / CONFIG_FILE).write_text(json.dumps({"root": str(ex.root), "course_id": ex.course_id}, indent=2)
                                           + "\n")
    return ex


def configured(course: CourseDir) -> Exchange | None:
    """The exchange ``course`` was tied to, or None."""
    path = course.root / CONFIG_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return Exchange(Path(data["root"]), str(data["course_id"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ExchangeIOError(f"{path} is not readable ({type(e).__name__}): run release --exchange ROOT again") \
            from None


# ---------------------------------------------------------------- release
def release(course: CourseDir, ex: Exchange, assignment: str) -> Path:
    """The generated student version (``release/<assignment>/``) into the exchange's outbound folder."""
    hx = _hub_exchange()
    try:
        return hx.release_to_exchange(ex.root, ex.course_id, assignment, course.release / assignment)
    except (hx.ExchangeSetupError, OSError) as e:
        raise ExchangeIOError(f"could not release {assignment} to the exchange {ex.course}: {e}") from None


# ---------------------------------------------------------------- collect
def stage_submissions(course: CourseDir, spool: Path, report, cap: int, assignment: str | None = None,
                      dry_run: bool = False) -> list[Path]:
    """Copy the exchange's chosen submissions into ``spool/exchange-<course>/<student>/<assignment>/`` for collect;
    returns [that folder] ([] when the course has no exchange or nothing was submitted).  A folder that names a
    student who does not own it, and anything in a submission that cannot be taken, is refused in ``report`` (a
    ``collect.CollectReport``); ``cap``: the bytes one notebook may have (collect's)."""
    ex = configured(course)
    if ex is None:
        return []
    from .sanitize import terminal_safe as shown

    hx = _hub_exchange()
    out = spool / f"exchange-{ex.course_id}"
    taken = []
    for a in [assignment] if assignment else course.released_assignments():
        for path in _forged(hx, ex, a):
            report.refuse(f"{out.name}/{shown(path.name)}", "the exchange folder names a student who does not own it "
                          "(another user made it): not collected")
        for rec in _chosen(hx, ex, course, a):
            student, src = rec["username"], ex.course / "inbound" / rec["filename"]
            where = f"{out.name}/{shown(rec['filename'])}"
            try:
                t = _copy_submission(src, out / student / a, pwd.getpwnam(student).pw_uid, cap,
                                     lambda what, why: report.refuse(f"{where}/{shown(what)}", why, student, a))
            except (OSError, KeyError) as e:
                report.refuse(where, f"could not be read ({type(e).__name__}): not collected", student, a)
                continue
            if not t.notebooks:
                report.refuse(where, "no notebook in this submission: nothing to collect", student, a)
            taken.append(Taken(student, a, rec["filename"], t.secret, t.seen.isoformat()))
    if not dry_run:
        for t in taken:
            _save(course, t)
    return [out] if out.is_dir() else []


def _forged(hx, ex: Exchange, assignment: str) -> list[Path]:
    inbound = ex.course / "inbound"
    return [p for p in sorted(inbound.glob(f"*+{assignment}+*"))
            if not hx.submission_owner_matches(str(p), p.name.rsplit("+", 3)[0])]


def _chosen(hx, ex: Exchange, course: CourseDir, assignment: str) -> list[dict]:
    """nbgrader's records of the submissions OwnerCheckedExchangeCollect takes: one per student, owner-checked."""
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange import ExchangeError

    bindir = os.path.dirname(sys.executable)        # nbgrader's Gradebook runs `alembic` from PATH (CourseDir.env)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    cd = CourseDirectory(root=str(course.root), course_id=ex.course_id, assignment_id=assignment,
                         db_url=f"sqlite:///{course.db_path}")
    collector = hx.OwnerCheckedExchangeCollect(coursedir=cd, root=str(ex.root))
    try:
        collector.init_src()
    except ExchangeError as e:
        raise ExchangeIOError(f"the exchange {ex.course}: {e}") from None
    return collector.src_records


@dataclass
class _Copied:
    secret: str
    seen: dt.datetime
    notebooks: int


def _copy_submission(src: Path, dest: Path, uid: int, cap: int, refuse) -> _Copied:
    """The regular ``.ipynb`` files of one submission folder (owned by ``uid``) into ``dest``, never through a
    link, one at a time (at most ``cap`` bytes each and four times that in all, as collect's budget per student);
    each copy dated with the latest change seen."""
    top = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    written: list[Path] = []
    try:
        st = os.fstat(top)
        if st.st_uid != uid:
            raise PermissionError(f"{src} changed owner")
        seen, secret, left = st.st_ctime, "", 4 * cap
        for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                rel = os.path.normpath(os.path.join(dirpath, name))
                if rel == "submission_secret.txt":
                    data, _, _ = _read(name, dirfd, MAX_SECRET_BYTES)
                    text = (data or b"").decode("ascii", "replace").strip()
                    secret = text if SECRET.fullmatch(text) else ""
                    continue
                if name.startswith(".") or not name.lower().endswith(".ipynb"):
                    continue
                if len(written) >= MAX_NOTEBOOKS:
                    refuse(rel, f"more than {MAX_NOTEBOOKS} notebooks in one submission: not read")
                    continue
                data, why, ctime = _read(name, dirfd, min(cap, left))
                if data is None:
                    refuse(rel, why if left >= cap else f"more than {4 * cap // 2**20} MB of notebooks in one "
                                                        "submission: the rest was not read")
                    continue
                left -= len(data)
                seen = max(seen, ctime)
                path = dest / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                written.append(path)
    finally:
        os.close(top)
    for path in written:
        os.utime(path, (seen, seen))
    return _Copied(secret, dt.datetime.fromtimestamp(seen, dt.timezone.utc), len(written))


def _read(name: str, dirfd: int, cap: int) -> tuple[bytes | None, str, float]:
    """(at most ``cap`` bytes of the regular file ``name``, "", its ctime) or (None, why not, 0)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError as e:
        return None, ("a link, not a file: not read" if e.errno == errno.ELOOP else
                      f"could not be opened ({type(e).__name__})"), 0.0
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file: not read", 0.0
        data = fh.read(cap + 1)
    if len(data) > cap:
        return None, f"larger than {cap // 2**20} MB: not read", 0.0
    return data, "", st.st_ctime


def _record_path(course: CourseDir, assignment: str, student: str) -> Path:
    return course.root / RECORDS / assignment / f"{student}.json"


def _save(course: CourseDir, t: Taken) -> None:
    path = _record_path(course, t.assignment, t.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(t.__dict__, indent=2) + "\n")


def taken(course: CourseDir, assignment: str, student: str) -> Taken | None:
    """What collect last took from ``student``'s exchange submission of ``assignment``, or None."""
    try:
        return Taken(**json.loads(_record_path(course, assignment, student).read_text()))
    except (OSError, ValueError, TypeError):
        return None


# ---------------------------------------------------------------- feedback
def return_feedback(course: CourseDir, ex: Exchange, assignment: str, students) -> list[Returned]:
    """Each student's feedback pages of ``assignment`` (``feedback/<student>/<assignment>/<notebook>.html``) into
    the exchange, under the names their Assignment List looks for."""
    hx = _hub_exchange()
    notebooks = sorted(p.stem for p in (course.release / assignment).glob("*.ipynb"))
    out = []
    for s in sorted(students):
        t = taken(course, assignment, s)
        folder = course.feedback / s / assignment
        problem = folder / "GRADING_PROBLEM.html"     # feedback.failure_page: stands for every notebook
        pages = {nb: folder / f"{nb}.html" if (folder / f"{nb}.html").is_file() else problem
                 for nb in notebooks if (folder / f"{nb}.html").is_file() or problem.is_file()}
        if t is None:
            out.append(Returned(s, assignment, 0, "not submitted through the exchange: hand the page over yourself"))
        elif not t.secret:
            out.append(Returned(s, assignment, 0, "their submission had no usable submission_secret.txt, so the "
                                                  "Assignment List cannot find feedback: hand the page over yourself"))
        elif not pages:
            out.append(Returned(s, assignment, 0, "no feedback page"))
        else:
            try:
                for nb, page in pages.items():
                    hx.place_feedback(ex.root, ex.course_id, s, t.secret, nb, page.read_bytes())
            except (OSError, KeyError, hx.ExchangeSetupError) as e:
                out.append(Returned(s, assignment, 0, f"could not be written ({type(e).__name__}: {e})"))
                continue
            out.append(Returned(s, assignment, len(pages), ""))
    return out
