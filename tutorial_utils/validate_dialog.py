"""Validate's dialog in the student lab says what Validate checked and what it did not (issue 24).

nbgrader's lab extension writes the dialog's text in its JavaScript: "Success! Your notebook passes all the tests."
when no cell is flagged, although the hidden tests that grade the notebook never ran, and "The following cell
failed:" above every flagged cell, written answers still empty included.  ``install`` copies the installed extension
(``<prefix>/share/jupyter/labextensions/@jupyter/nbgrader``) to the student lab's own folder
(``<prefix>/share/jupyter-student/labextensions``, which ``tutorial_utils/lab.py`` passes to JupyterLab as an extra
extensions path: it comes before the installed ones) and replaces those two texts there.  The installed extension
is not touched: the instructor lab and a reinstall see nbgrader's own files.

Each replacement is exact, once, in one file: an nbgrader whose texts differ raises ``DialogPatchError`` (naming its
version) and leaves no copy, so the lab falls back to nbgrader's own dialog instead of half a patch.  The patched
chunk and the ``remoteEntry`` that names it get new file names (a hash of their new content), as the build would
give them: JupyterLab tells browsers to keep extension files for a year, so a browser that saw nbgrader's chunk
would otherwise keep showing its text.

Run as a file by ``lab.py`` (no package import, no PyTorch): standard library only.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

EXTENSION = "@jupyter/nbgrader"
STUDENT_DATA = "jupyter-student"          # <prefix>/share/<this>/labextensions: the student lab's extensions
SOURCE_STAMP = ".course-source"           # in the copy: the installed extension it was made from

SUCCESS = ("Validate found nothing to fix. It ran your notebook from the top in a fresh kernel: no cell raised an "
           "error, every self-check passed, and no written answer is empty. It did not run the hidden tests that "
           "grade your code (they use other inputs than the self-checks), nor judge your written answers: both are "
           "graded after you hand the notebook in.")
FLAGGED = ("Look at this cell before you hand in: it raised an error (a self-check that fails says what is off), "
           "or it is a written answer still empty.")
# nbgrader's text -> the course's, as the JavaScript string literals they are in the built extension
TEXTS = {'"Success! Your notebook passes all the tests."': json.dumps(SUCCESS),
         '"The following cell failed:"': json.dumps(FLAGGED)}


class DialogPatchError(RuntimeError):
    """nbgrader's lab extension is missing or is not the build whose texts this module replaces."""


def installed_extension(prefix: str | Path) -> Path:
    return Path(prefix) / "share" / "jupyter" / "labextensions" / EXTENSION


def student_labextensions(prefix: str | Path) -> Path:
    """The folder the student lab adds to JupyterLab's extension paths."""
    return Path(prefix) / "share" / STUDENT_DATA / "labextensions"


def _fingerprint(ext: Path) -> str:
    """The installed extension's identity: its package.json and its files' names and sizes."""
    h = hashlib.sha256((ext / "package.json").read_bytes())
    for f in sorted(p for p in ext.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(ext).as_posix()}:{f.stat().st_size}\n".encode())
    return h.hexdigest()


def _content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _patch(ext: Path, version: str) -> None:
    """Replace TEXTS in the copy ``ext``; rename the chunk and its remoteEntry after their new content."""
    static = ext / "static"
    chunks = [p for p in sorted(static.glob("*.js")) if all(old in p.read_text(encoding="utf-8") for old in TEXTS)]
    counts = {old: sum(p.read_text(encoding="utf-8").count(old) for p in static.glob("*.js")) for old in TEXTS}
    if len(chunks) != 1 or any(n != 1 for n in counts.values()):
        raise DialogPatchError(
            f"nbgrader {version}'s lab extension is not the build tutorial_utils/validate_dialog.py knows (nbgrader "
            f"0.9.6): its Validate texts were found {counts} times, once each expected. The student lab shows "
            f"nbgrader's own Validate dialog. Install nbgrader 0.9.6 (pip install 'nbgrader==0.9.6'), or update "
            f"TEXTS there for this build.")
    chunk = chunks[0]
    m = re.fullmatch(r"(\d+)\.([0-9a-f]+)\.js", chunk.name)
    package = json.loads((ext / "package.json").read_text(encoding="utf-8"))
    entry = ext / package["jupyterlab"]["_build"]["load"]
    e = re.fullmatch(r"remoteEntry\.([0-9a-f]+)\.js", entry.name)
    if not (m and e and entry.is_file()):
        raise DialogPatchError(f"nbgrader {version}'s lab extension has an unexpected layout ({chunk.name}, "
                               f"{entry.name}): the student lab shows nbgrader's own Validate dialog.")
    text = chunk.read_text(encoding="utf-8")
    for old, new in TEXTS.items():
        text = text.replace(old, new)
    new_hash = _content_hash(text)
    chunk.unlink()
    (static / f"{m.group(1)}.{new_hash}.js").write_text(text, encoding="utf-8")
    # the chunk's file name and cache-busting query are built from {id: hash} maps in remoteEntry
    names = entry.read_text(encoding="utf-8")
    old_ref, new_ref = f'{m.group(1)}:"{m.group(2)}"', f'{m.group(1)}:"{new_hash}"'
    if old_ref not in names:
        raise DialogPatchError(f"nbgrader {version}'s {entry.name} does not name its chunk {chunk.name}: the student "
                               f"lab shows nbgrader's own Validate dialog.")
    names = names.replace(old_ref, new_ref)
    entry.unlink()
    new_entry = static / f"remoteEntry.{_content_hash(names)}.js"
    new_entry.write_text(names, encoding="utf-8")
    package["jupyterlab"]["_build"]["load"] = new_entry.relative_to(ext).as_posix()
    (ext / "package.json").write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")


def install(prefix: str | Path) -> Path:
    """The student copy of nbgrader's lab extension with Validate's texts replaced, made (or kept, if it is of the
    installed extension already) under ``student_labextensions(prefix)``; returns that folder.  Raises
    DialogPatchError, leaving no copy, if the extension is missing or its texts differ."""
    source = installed_extension(prefix)
    root = student_labextensions(prefix)
    dest = root / EXTENSION
    if not (source / "package.json").is_file():
        shutil.rmtree(dest, ignore_errors=True)
        raise DialogPatchError(f"nbgrader's lab extension is not in {source}: is nbgrader installed in this "
                               f"environment (pip install 'nbgrader>=0.9,<0.10')?")
    stamp = _fingerprint(source)
    if (dest / SOURCE_STAMP).is_file() and (dest / SOURCE_STAMP).read_text() == stamp:
        return root
    shutil.rmtree(dest, ignore_errors=True)
    work = dest.parent / f".{dest.name}.tmp"           # hidden from JupyterLab's glob until it is complete
    shutil.rmtree(work, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, work)
    try:
        version = json.loads((source / "package.json").read_text(encoding="utf-8")).get("version", "?")
        _patch(work, version)
    except Exception:
        shutil.rmtree(work, ignore_errors=True)
        raise
    (work / SOURCE_STAMP).write_text(stamp)
    work.rename(dest)
    return root
