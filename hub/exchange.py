"""nbgrader's exchange on a shared machine, closed so that students cannot reach each other's work.

nbgrader's default exchange (``nbgrader.exchange.default``) is made for trust: its root is 0777, a submission folder
is made 0777 "so the instructor can delete later" and is hidden from the other students only by its name (a
timestamp and 12 random characters). A student who learns that name can read, overwrite or delete the submission; a
student can rename the course folder under the 0777 root and put in an inbound of their own; and a folder named
``alice+ps1+...`` made by anyone is filed by nbgrader's collect as Alice's.

Here the hub's set-up (:func:`prepare_exchange`, run as root by ``./course hub``) makes the folders, owned by root and
the instructors' OS group, and two of nbgrader's exchange classes are replaced (``ExchangeFactory``, written into
the students' and instructors' nbgrader config by :mod:`hub.labs`):

    <root>/                     1777 root:root       what nbgrader checks (writable by all), but sticky: a course
                                                       folder cannot be renamed or deleted by anyone but root
    <root>/<course>/            2775 root:<group>    the instructors release into it
        outbound/               2775 root:<group>    students read and fetch released assignments
        inbound/                3773 root:<group>    students create (cannot list; sticky: cannot rename or
                                                       delete what is not theirs); the instructors list and read
            <student>+<a>+<t>+<r>/   0750 <student>:<group>, files 0640: only the student and the instructors
        feedback/               2771 root:<group>    students open their own file by its name (a hash of the
                                                       submission's secret, which only they and the instructors read)

:class:`PrivateExchangeSubmit` copies a submission into a 0700 staging folder first and moves it into place with its
final permissions, so at no moment can another student read or change it. :class:`OwnerCheckedExchangeCollect` takes a
submission only if its folder belongs to the OS user the folder's name claims: a student's identity comes from the
file system, never from a name they wrote.

``./course instructor`` (ddpm_instructor/exchange_io.py) releases with :func:`release_to_exchange` (the whole
assignment folder replaced in one rename, 2755/0644) and returns feedback with :func:`place_feedback` (nbgrader's
name for it, the file owned by its student, 0640).
"""
from __future__ import annotations

import datetime
import glob
import grp
import os
import pwd
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.exchange.default.submit import ExchangeSubmit

# (path relative to the exchange root's course folder, mode); the course folder itself first
COURSE_LAYOUT = (("", 0o2775), ("outbound", 0o2775), ("inbound", 0o3773), ("feedback", 0o2771))
SUBMISSION_DIR_MODE = 0o750
SUBMISSION_FILE_MODE = 0o640


class ExchangeSetupError(RuntimeError):
    """The exchange cannot be prepared as asked (not root, unknown group, a path that is not a folder)."""


@dataclass(frozen=True)
class ExchangeLayout:
    root: Path
    course_id: str
    group: str

    @property
    def course(self) -> Path:
        return self.root / self.course_id

    @property
    def inbound(self) -> Path:
        return self.course / "inbound"

    @property
    def outbound(self) -> Path:
        return self.course / "outbound"

    @property
    def feedback(self) -> Path:
        return self.course / "feedback"


def prepare_exchange(root: str | os.PathLike, course_id: str, group: str) -> ExchangeLayout:
    """Make (or repair) the exchange's folders with the owners and modes in this module's docstring.  Run as root.
    Idempotent; files inside the folders are left alone."""
    if os.geteuid() != 0:
        raise ExchangeSetupError("preparing the exchange needs root (it sets owners); run ./course hub as root")
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ExchangeSetupError(f"no OS group {group!r}: create it first (groupadd {group})") from None
    if not course_id or "/" in course_id or course_id.startswith("."):
        raise ExchangeSetupError(f"course id {course_id!r} is not a plain folder name")
    layout = ExchangeLayout(Path(root), course_id, group)
    _ensure_dir(layout.root, 0o1777, 0, 0)
    for rel, mode in COURSE_LAYOUT:
        _ensure_dir(layout.course / rel if rel else layout.course, mode, 0, gid)
    return layout


def _ensure_dir(path: Path, mode: int, uid: int, gid: int) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ExchangeSetupError(f"{path} exists and is not a folder: move it away and run again")
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)          # after chown: chown clears the set-gid bit


class PrivateExchangeSubmit(ExchangeSubmit):
    """nbgrader's submit, with the submission readable only by its student and the instructors' group (which the
    set-gid inbound gives it) and never, not even while it is copied, open to anyone else."""

    def copy_files(self):
        self.init_release()
        submission_secret = secrets.token_hex(64)
        dest_path = os.path.join(self.inbound_path, self.assignment_filename)
        if self.add_random_string:
            cache_path = os.path.join(self.cache_path, self.assignment_filename.rsplit("+", 1)[0])
        else:
            cache_path = os.path.join(self.cache_path, self.assignment_filename)
        self.log.info("Source: {}".format(self.src_path))
        self.log.info("Destination: {}".format(dest_path))
        self.check_filename_diff()

        staging = os.path.join(self.inbound_path, f".staging-{secrets.token_urlsafe(12)}")
        # 0700, and set-gid inherited from the inbound: what is copied in gets the instructors' group
        os.mkdir(staging, 0o700)
        try:
            staged = os.path.join(staging, "submission")
            # written in the set-gid staging folder, then moved: copytree's last chmod clears the set-gid bit of
            # the copy, after which new files would get the student's group
            for name, text in (("timestamp.txt", self.timestamp), ("submission_secret.txt", submission_secret)):
                with open(os.path.join(staging, name), "w") as fh:
                    fh.write(text)
            self.do_copy(self.src_path, staged)
            for name in ("timestamp.txt", "submission_secret.txt"):
                os.replace(os.path.join(staging, name), os.path.join(staged, name))
            self.set_perms(staged, fileperms=SUBMISSION_FILE_MODE, dirperms=SUBMISSION_DIR_MODE)
            os.rename(staged, dest_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

        os.makedirs(self.cache_path, exist_ok=True)
        self.do_copy(self.src_path, cache_path)
        with open(os.path.join(cache_path, "timestamp.txt"), "w") as fh:
            fh.write(self.timestamp)
        with open(os.path.join(cache_path, "submission_secret.txt"), "w") as fh:
            fh.write(submission_secret)
        self.log.info("Submitted as: {} {} {}".format(
            self.coursedir.course_id, self.coursedir.assignment_id, str(self.timestamp)))


def student_uid(username: str) -> int:
    """The uid of the OS user ``username`` (KeyError if none); on Kubernetes (``DDPM_HUB_UIDS=hash``), where the
    instructors' pods have no account per student, the uid the hub gives that student's pods (hub/uids.py)."""
    from .uids import MODE_ENV, uid_for
    if os.environ.get(MODE_ENV) == "hash":
        return uid_for(username)
    return pwd.getpwnam(username).pw_uid


def last_change(path: str) -> datetime.datetime:
    """The latest ctime of a submission folder and everything in it, links not followed (naive UTC, as nbgrader's
    timestamps): its owner can make it later (any change does), never earlier."""
    seen = os.lstat(path).st_ctime
    for dirpath, dirnames, filenames, dirfd in os.fwalk(path, follow_symlinks=False):
        for name in dirnames + filenames:
            try:
                seen = max(seen, os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_ctime)
            except OSError:
                continue
    return datetime.datetime.fromtimestamp(seen, datetime.timezone.utc).replace(tzinfo=None)


def trusted_time(path: str, claimed: datetime.datetime | None) -> datetime.datetime:
    """A submission's time: the time its folder's name (and the timestamp.txt its student's own submit wrote)
    claims where that is not earlier than the last change the collector sees; else that last change."""
    seen = last_change(path)
    return claimed if claimed is not None and claimed >= seen else seen


def submission_owner_matches(path: str, username: str) -> bool:
    """Whether the submission folder ``path`` belongs to the OS user ``username`` (and is a real folder)."""
    try:
        st = os.lstat(path)
        return stat.S_ISDIR(st.st_mode) and st.st_uid == student_uid(username)
    except (KeyError, OSError):
        return False


class OwnerCheckedExchangeCollect(ExchangeCollect):
    """nbgrader's collect, taking only submissions whose folder belongs to the student its name claims; any other
    is reported and left where it is."""

    def init_src(self):
        super().init_src()       # checks the course, reads the due date; its choice may hold a forged submission
        student_id = self.coursedir.student_id if self.coursedir.student_id else "*"
        pattern = os.path.join(self.inbound_path, "{}+{}+*".format(student_id, self.coursedir.assignment_id))
        by_student: dict[str, list] = {}
        for path in sorted(glob.glob(pattern)):
            record = self._path_to_record(path)
            if submission_owner_matches(path, record["username"]):
                record["claimed"], record["timestamp"] = record["timestamp"], trusted_time(path, record["timestamp"])
                by_student.setdefault(record["username"], []).append(record)
            else:
                self.log.error("Ignoring %s: it claims to be %s's submission, but that OS user does not own it",
                               path, record["username"])
        self.src_records = [self._pick(records) for _, records in sorted(by_student.items())]

    def do_copy(self, src, dest):
        """nbgrader's copy, then the submission's ``timestamp.txt`` replaced by the time the collector trusts
        (``trusted_time``), so that autograde's late penalty never reads a time the student wrote."""
        super().do_copy(src, dest)
        rec = next((r for r in self.src_records if os.path.join(self.inbound_path, r["filename"]) == src), None)
        if rec is None:
            return
        with open(os.path.join(dest, "timestamp.txt"), "w") as fh:
            fh.write(rec["timestamp"].strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC")
        said = "" if rec["claimed"] == rec["timestamp"] else (
            f" (its name and timestamp.txt said {rec['claimed']}: the student's own word, not used)")
        self.log.info("%s: submitted %s UTC, the last change the collector sees%s", rec["username"], rec["timestamp"],
                      said)

    def _pick(self, records):
        """nbgrader's choice: the newest submission, or the newest before the due date when asked for."""
        records = self._sort_by_timestamp(records)
        if self.duedate is not None and self.before_duedate:
            before = [r for r in records if r["timestamp"] <= self.duedate]
            if before:
                return before[0]
        return records[0]


# ---------------------------------------------------------------- release and feedback (./course instructor)
RELEASED_DIR_MODE = 0o2755      # outbound/<assignment>/: every student reads and fetches it, the instructors' group
RELEASED_FILE_MODE = 0o644
FEEDBACK_FILE_MODE = 0o640      # feedback/<hash>.html: owned by its student, the instructors' group; no one else


def release_to_exchange(root: str | os.PathLike, course_id: str, assignment: str, src: str | os.PathLike) -> Path:
    """Put the student version ``src`` (a folder) into ``outbound/<assignment>/`` of the exchange, replacing an
    earlier release in one rename: a student fetching meanwhile gets the old or the new one, never half of each.
    Folders 2755, files 0644 (nbgrader's release gives the same); links and special files in ``src`` are not copied."""
    outbound = ExchangeLayout(Path(root), course_id, "").outbound
    if not outbound.is_dir():
        raise ExchangeSetupError(f"{outbound} is not there: the hub prepares the exchange (./course hub, or "
                                 "./course hub --setup-only as root) before anything is released into it")
    if not assignment or "/" in assignment or assignment.startswith(".") or "+" in assignment:
        raise ExchangeSetupError(f"assignment {assignment!r} is not a plain folder name without '+'")
    dest = outbound / assignment
    staging = outbound / f".staging-{assignment}-{secrets.token_hex(6)}"
    old = outbound / f".replaced-{assignment}-{secrets.token_hex(6)}"
    try:
        shutil.copytree(src, staging, symlinks=True, ignore=_not_plain)
        for d, dirs, files in os.walk(staging):
            os.chmod(d, RELEASED_DIR_MODE)
            for f in files:
                os.chmod(os.path.join(d, f), RELEASED_FILE_MODE)
        if dest.exists() or dest.is_symlink():
            os.rename(dest, old)
        os.rename(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dest


def _not_plain(folder: str, names: list[str]) -> set[str]:
    """``copytree``'s ignore: links, pipes, devices and hidden files (checkpoints) stay out of a release."""
    out = set()
    for n in names:
        mode = os.lstat(os.path.join(folder, n)).st_mode
        if n.startswith(".") or n == "__pycache__" or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            out.add(n)
    return out


def feedback_file_name(secret: str, notebook_id: str) -> str:
    """The name of a notebook's feedback in ``feedback/``: nbgrader's hash of the submission's secret and the
    notebook's name, which is how a student's Assignment List finds it (and no one else can)."""
    from nbgrader.utils import notebook_hash
    return f"{notebook_hash(secret=secret, notebook_id=notebook_id)}.html"


def place_feedback(root: str | os.PathLike, course_id: str, student: str, secret: str, notebook_id: str,
                   page: bytes) -> Path:
    """Write one feedback page into the exchange's ``feedback/`` under nbgrader's name for it, replacing an earlier
    one in one rename.  Run as root (the hub's machine): owned by ``student``, readable by them and the instructors'
    group only.  Run by an instructor who is not root (who cannot give a file away): 0644, as nbgrader's own
    release_feedback leaves it, found only by its name (the hash of a secret other students cannot read)."""
    feedback = ExchangeLayout(Path(root), course_id, "").feedback
    if not feedback.is_dir():
        raise ExchangeSetupError(f"{feedback} is not there: the hub prepares the exchange (./course hub)")
    uid = student_uid(student)
    dest = feedback / feedback_file_name(secret, notebook_id)
    tmp = feedback / f".tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(page)
        if os.geteuid() == 0:
            os.chown(tmp, uid, -1)           # the group is the set-gid feedback folder's: the instructors'
            os.chmod(tmp, FEEDBACK_FILE_MODE)
        else:
            os.chmod(tmp, 0o644)
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
