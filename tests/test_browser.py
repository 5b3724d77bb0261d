"""The course in a real browser, as a student and as an instructor would use it.

* the student lab (`./course lab`): the first notebook opens, no news pop-up, no instructor tool (no Nbgrader menu,
  no Create Assignment panel), a wrong answer's self-check is one line, the
  right one passes, nbgrader's Validate lists what still fails;
* the instructor lab (`./course instructor lab`): the formgrader lists the released assignment and a collected,
  autograded submission; the instructor gives points and a comment to a written answer; the grades CSV shows them;
* a bundle unzipped into an empty folder and set up with its README's commands: its notebook opens, Validate works.

Playwright for Python drives Debian's Chromium (`apt-get install chromium`; .ci/run installs it).  Without Chromium or
playwright the tests skip, except under CI=true, where they fail.  Screenshots land in each test's tmp_path (names
in SHOTS); each test's wall time is printed and written to tmp_path/wall_time.txt.
"""
import csv
import os
import re
import shlex
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from lab_server import start_instructor_lab, start_lab, start_server, stop

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
A = "02_forward_closed_form"
NOTEBOOK = f"{A}/{A}.ipynb"
ANSWER = "return torch.linspace(beta_start, beta_end, timesteps)"
WRONG = "return torch.linspace(0, beta_end, timesteps)"
NEWS = "official Jupyter news"
STUDENT, POINTS, COMMENT = "s-alice", "1.5", "Right about the two bumps; say why they blur into one as t grows."
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = {"student": ["01_first_screen.png", "02_self_check_failed.png", "03_self_check_passed.png",
                     "04_validate_dialog.png"],
         "instructor": ["11_instructor_lab_formgrader.png", "12_manage_submissions.png", "13_manual_grading.png"],
         "bundle": ["21_bundle_first_screen.png", "22_bundle_validate.png"]}


def _unavailable(why: str):
    """Skip where a browser is optional; fail under CI=true, which installs Chromium and playwright."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI=true: the browser tests must run)")
    pytest.skip(why)


def _chromium():
    for cand in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    _unavailable("no Chromium binary (/usr/bin/chromium); install it with `apt-get install chromium`")


@pytest.fixture(scope="module")
def browser():
    chromium = _chromium()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as e:
        _unavailable(f"playwright cannot be imported ({e}); `./course setup` installs it")
    expect.set_options(timeout=20_000)           # JupyterLab on a busy 2-core machine: more than the default 5 s
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, tmp_path, request):
    t0 = time.monotonic()
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()
    wall = time.monotonic() - t0
    (tmp_path / "wall_time.txt").write_text(f"{request.node.name}: {wall:.1f} s\n")
    print(f"\n{request.node.name}: {wall:.1f} s; screenshots in {tmp_path}")


def _expect():
    from playwright.sync_api import expect
    return expect


def _no_news_popup(page):
    assert page.get_by_text(NEWS).count() == 0, "the 'official Jupyter news' pop-up is shown"


def _open_first_screen(page, base, token, tab_name):
    """`/` of a lab: its first notebook open, the course kernel idle."""
    expect = _expect()
    page.goto(f"{base}/?token={token}")
    expect(page.locator(".jp-NotebookPanel:visible")).to_have_count(1, timeout=60_000)
    expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text=tab_name)).to_have_count(1)
    panel = page.locator(".jp-NotebookPanel:visible")
    expect(panel.locator(".jp-KernelName")).to_have_text("Python (DDPM course)", timeout=60_000)   # no kernel dialog
    expect(panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)
    return panel


def _menubar(page):
    return page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").all_inner_texts()


def _nbgrader_menu(page):
    """The entries of the Nbgrader menu (opened and closed again)."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    items = page.locator(".lm-Menu:visible .lm-Menu-itemLabel").all_inner_texts()
    page.keyboard.press("Escape")
    return items


def _right_panels(page):
    return [t.get_attribute("title") or "" for t in page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab").all()]


def _validate(page, panel):
    """Press nbgrader's Validate button; (dialog, verdict text)."""
    panel.locator(".jp-Toolbar-item", has_text="Validate").locator("jp-button, button").first.click()
    dialog = page.locator(".jp-Dialog")
    _expect()(dialog.locator(".jp-Dialog-header")).to_have_text("Validation Results", timeout=120_000)
    return dialog, dialog.locator(".jp-Dialog-body").inner_text().strip()


# ------------------------------------------------------------------ the student lab
def _type_over_return(page, blank, text):
    """Replace the `return ...` line of the blank's function with ``text``, in the editor."""
    blank.locator(".cm-line", has_text="return ").last.click()
    page.keyboard.press("End")
    page.keyboard.press("Shift+Home")
    page.keyboard.type(text)
    code = blank.locator(".cm-content").inner_text()
    assert text in code, code
    page.keyboard.press("Escape")


def _run_check(page, check):
    """Run everything above the self-check cell (Run ▸ Run All Above Selected Cell), then the check itself."""
    before = check.locator(".jp-InputPrompt").inner_text()
    check.locator(".jp-InputPrompt").click()
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.get_by_role("menuitem", name="Run All Above Selected Cell").click()
    check.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    prompt = check.locator(".jp-InputPrompt")
    _expect()(prompt).to_have_text(re.compile(r"\[\d+\]:"), timeout=120_000)
    _expect()(prompt).not_to_have_text(before)
    return check.locator(".jp-OutputArea")


def test_student_lab_no_instructor_tools_one_line_self_check_and_validate(page, tmp_path):
    expect = _expect()
    token = "course-browser-token"
    proc, base = start_lab(tmp_path, token, timeout=120, DDPM_PROFILE="smoke", MPLBACKEND="Agg")
    try:
        _open_first_screen(page, base, token, "01_forward_diffusion_1d.ipynb")
        page.screenshot(path=tmp_path / "01_first_screen.png")
        _no_news_popup(page)
        # no instructor tool: no Nbgrader menu (its entries were Formgrader, Course List, Assignment List), no Create
        # Assignment panel (the instructor test below finds both with the same selectors)
        assert "Nbgrader" not in _menubar(page) and "File" in _menubar(page), _menubar(page)
        assert not [t for t in _right_panels(page) if "Create Assignment" in t], _right_panels(page)

        # notebook 2, from the file browser, whose root is the workspace (no instructor sources)
        page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").click()
        listing = page.locator(".jp-FileBrowser .jp-DirListing-item")
        expect(listing.filter(has_text=A)).to_have_count(1)
        names = set(listing.locator(".jp-DirListing-itemText").all_inner_texts())
        assert not names & {"source", "notebooks", "grading"}, names
        listing.filter(has_text=A).dblclick()
        listing.filter(has_text=f"{A}.ipynb").dblclick()
        panel = page.locator(".jp-NotebookPanel:visible")
        expect(page.locator(".lm-TabBar-tab.lm-mod-current", has_text=f"{A}.ipynb")).to_have_count(1)
        expect(panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)
        expect(panel.locator(".jp-Toolbar-item", has_text="Validate")).to_have_count(1)     # Validate stays

        cells = panel.locator(".jp-Notebook .jp-Cell")
        blank = cells.filter(has_text="def linear_beta_schedule")
        check = cells.filter(has_text="check_linear_beta_schedule(linear_beta_schedule)")
        expect(blank).to_have_count(1)
        expect(check).to_have_count(1)

        # a wrong answer: the self-check says what is wrong in one line, no traceback through the course's code
        _type_over_return(page, blank, WRONG)
        out = _run_check(page, check)
        expect(out).to_contain_text("wrong endpoint", timeout=10_000)
        text = out.inner_text().strip()
        page.screenshot(path=tmp_path / "02_self_check_failed.png")
        (tmp_path / "self_check_failed.txt").write_text(text)
        assert re.fullmatch(r"✗ wrong endpoint: linear_beta_schedule\(.*\)\[0\] = 0, expected beta_start = 0\.0001\.",
                            text), text
        assert "Traceback" not in text and "tutorial_utils" not in text and "blank.py" not in text, text

        # the right answer passes
        _type_over_return(page, blank, ANSWER)
        out = _run_check(page, check)
        expect(out).to_contain_text("✓ linear_beta_schedule", timeout=10_000)
        page.screenshot(path=tmp_path / "03_self_check_passed.png")

        # nbgrader's Validate (saves, then validates on the server): every failing cell, self-checks included
        dialog, verdict = _validate(page, panel)
        page.screenshot(path=tmp_path / "04_validate_dialog.png")
        (tmp_path / "validate_verdict.txt").write_text(verdict)
        expect(dialog.locator(".validation-failed")).to_have_count(1)
        assert "sqrt_alpha_bar is still None" in verdict, verdict
        assert "linear_beta_schedule returned None" not in verdict and "wrong endpoint" not in verdict, verdict
        dialog.get_by_role("button", name="Ok").click()
        expect(dialog).to_have_count(0)
        _no_news_popup(page)   # by now (well past start-up) the pop-up would have appeared
    finally:
        stop(proc)
    # the answer was saved into the workspace copy, not into notebooks/release
    saved = (tmp_path / "workspace" / NOTEBOOK).read_text()
    assert ANSWER in saved and ANSWER not in (ROOT / "notebooks" / "release" / NOTEBOOK).read_text()


# ------------------------------------------------------------------ the instructor lab
def _course(*args, timeout=600):
    out = subprocess.run([str(ROOT / "course"), "instructor", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, (args, out.stdout[-3000:], out.stderr[-3000:])
    return out.stdout


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A course directory with notebook 2 released (`./course instructor release`): its bundle zip and the id of
    its first written answer (a Markdown cell graded by hand)."""
    root = tmp_path_factory.mktemp("browser_course") / "grading"
    _course("--course-dir", str(root), "release", A)
    nb = nbformat.read(str(root / "release" / A / f"{A}.ipynb"), as_version=4)
    written = [c.metadata.nbgrader["grade_id"] for c in nb.cells if c.cell_type == "markdown"
               and c.metadata.get("nbgrader", {}).get("grade") and c.metadata.nbgrader.get("solution")]
    assert written, f"notebook {A} has no written answer graded by hand (an nbgrader manually graded Markdown cell)"
    return {"root": root, "nb": nb, "written": written[0]}


def _hand_in(released, tmp_path) -> Path:
    """s-alice's submission in nbgrader's layout: the first blank answered, the written answer written."""
    nb = nbformat.from_dict(released["nb"])
    for c in nb.cells:
        if c.cell_type == "code" and "def linear_beta_schedule" in c.source:
            c.source = c.source.replace("return None", ANSWER)
        if c.metadata.get("nbgrader", {}).get("grade_id") == released["written"]:
            c.source = "The pixels sit at -1 and +1, so x_t is two bumps of noise around them."
    folder = tmp_path / "hand_in" / STUDENT / A
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{A}.ipynb"))
    return tmp_path / "hand_in"


def test_instructor_lab_formgrader_lists_grades_by_hand_and_the_csv_shows_it(page, tmp_path, released):
    expect = _expect()
    root, written = released["root"], released["written"]
    _course("--course-dir", str(root), "collect", str(_hand_in(released, tmp_path)))
    _course("--course-dir", str(root), "autograde", A)
    token = "course-instructor-token"
    proc, base = start_instructor_lab(tmp_path, root, token, timeout=120)
    try:
        banner = (tmp_path / "instructor_lab.log").read_text()
        assert "no exchange" in banner and "bundles" in banner, banner[:2000]
        # JupyterLab with nbgrader's instructor tools: the Nbgrader menu's Formgrader, the Create Assignment panel;
        # not the exchange-based student lists
        page.goto(f"{base}/lab?token={token}")
        expect(page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader")).to_have_count(1, timeout=60_000)
        menu = _nbgrader_menu(page)
        assert "Formgrader" in menu and not {"Course List", "Assignment List"} & set(menu), menu
        assert [t for t in _right_panels(page) if "Create Assignment" in t], _right_panels(page)
        page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        page.get_by_role("menuitem", name="Formgrader").click()
        frame = page.frame_locator("iframe[src*='formgrader']")
        row = frame.locator("tr", has_text=A)
        expect(row).to_contain_text("released", timeout=60_000)           # what `release` released, not "draft"
        expect(frame.locator("#warning-exchange, #warning-course-id")).to_have_count(0)
        page.screenshot(path=tmp_path / "11_instructor_lab_formgrader.png")

        # Manage Submissions: the collected submission, autograded
        page.goto(f"{base}/formgrader/manage_submissions/{A}")
        expect(page.locator("tr", has_text=STUDENT)).to_have_count(1, timeout=30_000)
        page.screenshot(path=tmp_path / "12_manage_submissions.png")

        # Manual Grading: the notebook's submissions, the first one, points and a comment for the written answer
        page.goto(f"{base}/formgrader/gradebook/{A}/{A}")
        with page.expect_response(lambda r: "/api/grades?" in r.url), \
                page.expect_response(lambda r: "/api/comments?" in r.url):   # the page binds its inputs after these
            page.locator("a[href*='/formgrader/submissions/']").first.click()
        page.wait_for_load_state("networkidle")
        score = page.locator(f"input.score#{written}")
        expect(score).to_have_count(1, timeout=30_000)
        with page.expect_response(lambda r: "/api/grade/" in r.url and r.request.method == "PUT") as rs:
            score.fill(POINTS)
            score.press("Tab")
        assert rs.value.ok, rs.value.status
        comment = page.locator(f"textarea#{written}-comment")
        with page.expect_response(lambda r: "/api/comment/" in r.url and r.request.method == "PUT") as rc:
            comment.fill(COMMENT)
            comment.press("Tab")
        assert rc.value.ok, rc.value.status
        page.screenshot(path=tmp_path / "13_manual_grading.png")
    finally:
        stop(proc)

    # the grades CSV: the points given by hand and the comment
    _course("--course-dir", str(root), "grades")
    with open(root / "grades.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["student_id"] == STUDENT and r["assignment"] == A)
    with open(root / "grades_by_cell.csv") as f:
        cell = next(r for r in csv.DictReader(f) if r["student_id"] == STUDENT and r["cell"] == written)
    assert float(cell["score"]) == float(POINTS) and cell["comment"] == COMMENT, cell
    assert float(row["written"]) == float(POINTS) and COMMENT in row["comments"], row
    assert float(row["score"]) == float(row["autograded"]) + float(POINTS), row


# ------------------------------------------------------------------ a bundle, unzipped and set up
def _readme_commands(readme: str) -> list[str]:
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block, readme
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _preinstalled_venv(dest: Path) -> None:
    """What the README's `python3 -m venv .venv` and pip commands leave, made without the network from this course's
    venv: its packages hard-linked (symlinked across file systems), bin/ copied with the scripts pointed at the copy;
    without the course itself (the editable install) and without anything the course's set-up wrote (kernel,
    settings, nbgrader and lab configs): the README's commands must write those.  The README's own pip commands
    then run for real (offline: every requirement is already satisfied)."""
    dest.mkdir()
    shutil.copy2(VENV / "pyvenv.cfg", dest / "pyvenv.cfg")
    for name in ("lib64",):
        if (VENV / name).is_symlink():
            os.symlink(os.readlink(VENV / name), dest / name)
    (dest / "bin").mkdir()
    for p in (VENV / "bin").iterdir():
        if p.is_symlink():
            os.symlink(os.readlink(p), dest / "bin" / p.name)
        elif p.is_file():
            data = p.read_bytes()
            if data.startswith(b"#!"):
                first, _, rest = data.partition(b"\n")
                data = first.replace(str(VENV).encode(), str(dest).encode()) + b"\n" + rest
            (dest / "bin" / p.name).write_bytes(data)
            shutil.copymode(p, dest / "bin" / p.name)
    for sub in ("lib", "share", "include"):
        if (VENV / sub).is_dir():
            if subprocess.run(["cp", "-al", str(VENV / sub), str(dest / sub)], capture_output=True).returncode:
                shutil.rmtree(dest / sub, ignore_errors=True)
                subprocess.run(["cp", "-as", str(VENV / sub), str(dest / sub)], check=True)
    shutil.copytree(VENV / "etc", dest / "etc", symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in ("nbgrader_config.py", "jupyter-student",
                                                                       "jupyter-instructor")])
    site = next((dest / "lib").glob("python3*/site-packages"))
    for p in [*site.glob("__editable__*ddpm*"), *site.glob("ddpm_mnist_course*")]:
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    for p in (dest / "share" / "jupyter" / "kernels" / "ddpm-course", dest / "share" / "jupyter-student",
              dest / "share" / "jupyter" / "lab" / "settings" / "overrides.json"):
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def test_bundle_unzipped_and_set_up_with_its_readme_opens_its_notebook_and_validates(page, tmp_path, released):
    expect = _expect()
    folder = tmp_path / "student_downloads"
    folder.mkdir()
    with zipfile.ZipFile(released["root"] / "bundles" / f"{A}.zip") as zf:
        zf.extractall(folder)
    bundle = folder / A
    assert sorted(p.name for p in folder.iterdir()) == [A]
    commands = _readme_commands((bundle / "README.md").read_text())
    assert commands[0] == "python3 -m venv .venv" and commands[-1] == ".venv/bin/python tutorial_utils/lab.py", commands
    _preinstalled_venv(bundle / ".venv")
    # MNIST offline, as the README says: the four files in data/MNIST/raw/ beside the notebook
    from tutorial_utils.data import MNIST_FILES, resolve_data_root
    have = resolve_data_root() / "MNIST" / "raw"
    (bundle / "data" / "MNIST" / "raw").mkdir(parents=True)
    for f in MNIST_FILES:
        assert (have / f).is_file(), f"no MNIST in {have} (set DDPM_DATA_DIR)"
        os.symlink(have / f, bundle / "data" / "MNIST" / "raw" / f)
    shim = tmp_path / "bin"                      # the student's python3: this course's interpreter, offline pip
    shim.mkdir()
    os.symlink(os.path.realpath(VENV / "bin" / "python"), shim / "python3")
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{os.environ['PATH']}", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"))
    env.pop("DDPM_DATA_DIR", None)               # a bundle student has only the bundle
    for command in commands[:-1]:
        out = subprocess.run(command, shell=True, cwd=bundle, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, (command, out.stdout[-2000:], out.stderr[-2000:])
    token = "course-bundle-token"
    proc, base = start_server(shlex.split(commands[-1]), tmp_path, token, timeout=120, cwd=bundle,
                              log="bundle_lab.log", **{k: env[k] for k in ("PATH", "PIP_NO_INDEX")},
                              DDPM_PROFILE="smoke", MPLBACKEND="Agg")
    try:
        panel = _open_first_screen(page, base, token, f"{A}.ipynb")
        page.screenshot(path=tmp_path / "21_bundle_first_screen.png")
        _no_news_popup(page)
        assert "Nbgrader" not in _menubar(page), _menubar(page)
        assert not [t for t in _right_panels(page) if "Create Assignment" in t], _right_panels(page)
        dialog, verdict = _validate(page, panel)
        page.screenshot(path=tmp_path / "22_bundle_validate.png")
        (tmp_path / "bundle_validate_verdict.txt").write_text(verdict)
        assert "linear_beta_schedule returned None" in verdict and "sqrt_alpha_bar is still None" in verdict, verdict
        dialog.get_by_role("button", name="Ok").click()
        expect(dialog).to_have_count(0)
        _no_news_popup(page)   # well past start-up: the bundle's set-up wrote the same settings default
    finally:
        stop(proc)
    # the set-up wrote into the bundle's .venv only: the course kernel runs the bundle's Python
    kernel = (bundle / ".venv" / "share" / "jupyter" / "kernels" / "ddpm-course" / "kernel.json").read_text()
    assert str(bundle / ".venv" / "bin" / "python") in kernel, kernel
