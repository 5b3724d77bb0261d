"""Step 1: ``release`` -- snapshot ``notebooks/source``, generate the student versions with nbgrader, register them
in the gradebook, and write each assignment's student bundle (``ddpm_instructor.bundle``); on a class hub, also put
each student version into the hub's exchange, where the students' Assignment List fetches it
(``ddpm_instructor.exchange_io``: ``--exchange ROOT`` once, remembered by the course directory)."""
from __future__ import annotations

import shutil

from . import exchange_io
from .bundle import build_bundle, declare_public
from .coursedir import CourseDir, stamp, tree_digest, unique
from .errors import InstructorError


def release(course: CourseDir, assignments=None, force=False, public=(), exchange=None,
            exchange_course=None) -> list[str]:
    """Snapshot the sources, generate the student versions (nbgrader), register them, and write the bundles; with
    ``exchange`` (a hub's exchange root: remembered) or one remembered, release them into that exchange too."""
    ex = exchange_io.configure(course, exchange, exchange_course) if exchange else exchange_io.configured(course)
    if public:
        declare_public(course, public)
    names = list(assignments or course.source_assignments())
    if not names:
        raise InstructorError(f"no assignments found in {course.origin} (one folder per assignment, with the "
                         "source notebooks inside)")
    course.write_config()
    done = []
    for a in names:
        src = course.source_dir_for(a)
        dst = course.source / a
        changed = not dst.exists() or tree_digest(src) != tree_digest(dst)
        if dst.exists() and changed:
            keep = unique(course.backups / "source" / f"{a}-{stamp()}")
            keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(dst), str(keep))
            course.say(f"  previous source snapshot of {a} kept in {keep.relative_to(course.root)}")
        if changed:
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        if changed or force or not (course.release / a).exists() or not course.in_gradebook(a):
            course.backup_gradebook("release")
            r = course.nbgrader("generate_assignment", a, "--force")
            if r.returncode != 0:
                raise InstructorError(f"nbgrader generate_assignment {a} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        folder, zpath = build_bundle(course, a)
        auto, written = (sum(p for *_, p in course.points(a, written=w)) for w in (False, True))
        course.say(f"released {a} ({auto:g} points autograded, {written:g} written): hand out {zpath} "
                   f"(or the folder {folder})")
        if ex is not None:
            dest = exchange_io.release(course, ex, a)
            course.say(f"  and into the hub's exchange ({dest}): students fetch it in the Assignment List "
                       f"(course {ex.course_id})")
        done.append(a)
    return done
