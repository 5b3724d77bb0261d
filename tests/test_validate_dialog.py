"""tutorial_utils/validate_dialog.py: the student lab's copy of nbgrader's lab extension, whose Validate dialog says
what Validate checked and what it did not, made from the extension installed in this venv (nbgrader's real build);
the installed one stays as it is.  The dialog itself, in Chromium: tests/test_lab_validator.py."""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tutorial_utils"))
import lab  # noqa: E402  (run as files by ./course lab, so imported the same way here: no package import)
import validate_dialog as vd  # noqa: E402

VENV_PREFIX = Path(sys.prefix)
NBGRADER_SUCCESS = "Success! Your notebook passes all the tests."
NBGRADER_FAILED = "The following cell failed:"


def _static_text(ext: Path) -> str:
    return "".join(p.read_text(encoding="utf-8") for p in sorted((ext / "static").glob("*.js")))


@pytest.fixture
def prefix(tmp_path) -> Path:
    """A prefix holding a copy of this venv's installed nbgrader lab extension."""
    source = vd.installed_extension(VENV_PREFIX)
    assert (source / "package.json").is_file(), f"no nbgrader lab extension in {source}"
    shutil.copytree(source, vd.installed_extension(tmp_path))
    return tmp_path


def test_the_student_copy_says_what_validate_checked_and_the_installed_one_is_untouched(prefix):
    installed = vd.installed_extension(prefix)
    before = {p.relative_to(installed): p.read_bytes() for p in installed.rglob("*") if p.is_file()}
    assert NBGRADER_SUCCESS in _static_text(installed) and NBGRADER_FAILED in _static_text(installed)

    root = vd.install(prefix)
    copy = root / vd.EXTENSION
    text = _static_text(copy)
    assert NBGRADER_SUCCESS not in text and NBGRADER_FAILED not in text
    assert json.dumps(vd.SUCCESS) in text and json.dumps(vd.FLAGGED) in text
    assert "hidden tests" in vd.SUCCESS and "self-check" in vd.SUCCESS and "written answer" in vd.FLAGGED
    # renamed after its new content, and its remoteEntry (renamed too) names it: no browser keeps the old chunk
    package = json.loads((copy / "package.json").read_text())
    entry = copy / package["jupyterlab"]["_build"]["load"]
    assert entry.is_file() and entry.name not in {p.name for p in (installed / "static").iterdir()}
    chunk = next(p for p in (copy / "static").glob("*.js") if json.dumps(vd.SUCCESS) in p.read_text())
    number, digest = re.fullmatch(r"(\d+)\.([0-9a-f]+)\.js", chunk.name).groups()
    assert not (installed / "static" / chunk.name).exists()
    assert entry.read_text().count(f'{number}:"{digest}"') == 2        # its file name and its ?v= query
    # nbgrader's own files are as they were: the instructor lab and a reinstall see them
    after = {p.relative_to(installed): p.read_bytes() for p in installed.rglob("*") if p.is_file()}
    assert after == before


def test_the_copy_is_kept_while_the_installed_extension_is_the_same_and_remade_when_it_changes(prefix):
    copy = vd.install(prefix) / vd.EXTENSION
    stamp = (copy / vd.SOURCE_STAMP).stat().st_mtime_ns
    vd.install(prefix)
    assert (copy / vd.SOURCE_STAMP).stat().st_mtime_ns == stamp        # nothing rewritten on each lab start
    (vd.installed_extension(prefix) / "static" / "style.js").write_text("/* a reinstalled nbgrader */\n")
    vd.install(prefix)
    assert (copy / "static" / "style.js").read_text() == "/* a reinstalled nbgrader */\n"


def test_an_nbgrader_with_other_texts_raises_and_leaves_no_copy(prefix):
    root = vd.install(prefix)                                          # a copy from before an upgrade
    installed = vd.installed_extension(prefix)
    chunk = next(p for p in (installed / "static").glob("*.js") if NBGRADER_SUCCESS in p.read_text())
    chunk.write_text(chunk.read_text().replace(NBGRADER_SUCCESS, "Success! All tests passed."))
    with pytest.raises(vd.DialogPatchError, match=r"nbgrader 0\.9\.\d+'s lab extension is not the build .* "
                                                  r"shows nbgrader's own Validate dialog"):
        vd.install(prefix)
    assert not (root / vd.EXTENSION).exists() and not list(root.rglob("*.tmp"))


def test_no_nbgrader_extension_says_so(tmp_path):
    with pytest.raises(vd.DialogPatchError, match="is nbgrader installed"):
        vd.install(tmp_path)


def test_the_student_lab_reads_the_copy_first_and_warns_without_it(prefix, monkeypatch, tmp_path, capsys):
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.setattr(sys, "prefix", str(prefix))
    argv, _ = lab.lab_command(folder, [])
    assert not [a for a in argv if "extra_labextensions_path" in a], argv     # no copy: nbgrader's own dialog
    root = vd.install(prefix)
    argv, _ = lab.lab_command(folder, [])
    assert f"--LabApp.extra_labextensions_path={root}" in argv, argv

    def refused():
        raise vd.DialogPatchError("nbgrader 9.9's lab extension is not the build ...")
    monkeypatch.setattr(lab, "setup", refused)
    lab.main(["--setup-only"])                                         # the set-up goes on, and says why
    assert "warning: nbgrader 9.9's lab extension" in capsys.readouterr().err
