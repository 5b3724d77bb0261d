"""What a student wrote never runs in the instructor's browser (issue 22), in Chromium.

A submission of notebook 2 carries every vector of tests/fixtures/sanitize_vectors.json (Markdown in the written
answer and in added cells, stored outputs, attachments, a raw cell, a file name that reaches the "Grader notes"),
and a cell whose run makes HTML, JavaScript and Markdown outputs while it is graded.  Each script, when it runs,
writes a file into grading/ through the Jupyter contents API, opens a terminal, logs a marker and opens a dialog.
It is collected, autograded and given feedback with `./course instructor ...`, then opened in the formgrader of
`./course instructor lab` (the formgrader still grades it: its own scripts run) and its feedback page is opened
(from the server and from disk).  Then: no file written (grading/'s digest unchanged but for the gradebook), no
terminal, no request from a page to /api/contents or /api/terminals, no marker, no dialog; and ids above the
written answer (``_box_ids``) take none of its boxes: the instructor's score and comment are saved for it.

The second test opens the formgrader page of the largest submission collect keeps (sanitize's caps) and times it.
About 3 minutes on 2 busy cores.  Chromium and Playwright as in tests/test_browser.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_raw_cell

from lab_server import start_instructor_lab, stop
from test_browser import A, _course, _expect, browser, released  # noqa: F401 - fixtures shared with this module

from ddpm_instructor.sanitize import MAX_BYTES, MAX_CELLS, TOTAL_SOURCE_CHARS

VECTORS = json.loads((Path(__file__).parent / "fixtures" / "sanitize_vectors.json").read_text())
MALLORY, BIG = "s-mallory", "s-big"
TOKEN = "course-attack-token"
MARKER = "XSS-MARKER"
# What each vector's script does: write grading/pwned-<vector>.txt and open a terminal with the instructor's session
# (the _xsrf cookie), log the marker, open a dialog.  No '/' in it (a file name may carry it).
PAYLOAD = ("(function(){var m=document.cookie.match(new RegExp('_xsrf=([^;]+)'));"
           "var h={'Content-Type':'application\\x2fjson'};if(m){h['X-XSRFToken']=decodeURIComponent(m[1]);}"
           "fetch('\\x2fapi\\x2fcontents\\x2fpwned-NAME.txt',{method:'PUT',headers:h,"
           "body:JSON.stringify({type:'file',format:'text',content:'pwned'})});"
           "fetch('\\x2fapi\\x2fterminals',{method:'POST',headers:h});"
           f"console.log('{MARKER} NAME');alert('NAME');}})()")


SHORT_PAYLOAD = f"fetch('\\x2fapi\\x2fterminals',{{method:'POST'}});console.log('{MARKER} NAME');alert('NAME')"


def _b64(code: str) -> str:
    """base64 of ``code``, padded with spaces until it has no '/' (a file name cannot hold one) and no '='."""
    while len(code.encode()) % 3 or "/" in base64.b64encode(code.encode()).decode():
        code += " "
    return base64.b64encode(code.encode()).decode()


def _js(name: str) -> str:
    return f"eval(atob('{_b64(PAYLOAD.replace('NAME', name))}'))"


def _name_js(name: str) -> str:
    """For a file name: no quotes (collect quotes the name in its note) and no '/'."""
    return f"eval(atob(this.alt)) alt={_b64(SHORT_PAYLOAD.replace('NAME', name))}"


def _fill(obj, name):
    if isinstance(obj, str):
        return obj.replace("JS", _js(name)).replace("NAME", name)
    if isinstance(obj, dict):
        return {k: _fill(v, name) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_fill(v, name) for v in obj]
    return obj


def _box_ids(written: str) -> list:
    """Markdown above the written answer whose ids would be those of its score and comment boxes (nbgrader's
    formgrade.js binds ``$("#" + grade_id)``, the first element with that id): an id of the student's own, and a
    heading whose text nbconvert turns into that id.  Hijacked, the instructor's score is silently not saved."""
    return [new_markdown_cell(f'<h2 id="{written}">My notes</h2>\n\n<h3 id="{written}-comment">more</h3>'),
            new_markdown_cell(f"## {written}\n\n### {written}-comment")]


def _attacked(released) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(released["nb"])))
    for i, c in enumerate(nb.cells):
        if c.metadata.get("nbgrader", {}).get("grade_id") == released["written"]:
            c.source = ("The pixels sit at -1 and +1, so x_t is two bumps of noise around them. "
                        + _fill(VECTORS["markdown"]["img_onerror"], "written_answer"))
            nb.cells[i:i] = _box_ids(released["written"])
            break
    for name, md in VECTORS["markdown"].items():
        nb.cells.append(new_markdown_cell(_fill(md, name)))
    shown = new_code_cell("1 + 1", execution_count=1)
    shown.outputs = [nbformat.from_dict(_fill(out, name)) for name, out in VECTORS["outputs"].items()]
    nb.cells.append(shown)
    for name, v in VECTORS["attachments"].items():
        nb.cells.append(new_markdown_cell(v["markdown"], attachments=_fill(v["attachments"], name)))
    nb.cells += [new_raw_cell(_fill(raw, name)) for name, raw in VECTORS["raw"].items()]
    made = {kind: _fill(VECTORS["outputs"]["html_output"]["data"]["text/html"], f"run_{kind}")
            for kind in ("HTML", "Markdown")}
    nb.cells.append(new_code_cell(   # outputs made while it is graded, in the sandbox
        "from IPython.display import HTML, Javascript, Markdown, display\n"
        f"display(HTML({made['HTML']!r}))\ndisplay(Markdown({made['Markdown']!r}))\n"
        f"display(Javascript({_js('run_Javascript')!r}))"))
    return nb


def _largest(released) -> nbformat.NotebookNode:
    """notebook 2 as handed out, grown to sanitize's caps: cells, Markdown, printed text."""
    nb = nbformat.from_dict(json.loads(json.dumps(released["nb"])))
    room = MAX_CELLS - len(nb.cells)
    per_md = TOTAL_SOURCE_CHARS["markdown"] // (room // 2) - 200
    text = ("Since $\\bar\\alpha_t = \\prod_s (1-\\beta_s)$, the *signal* shrinks: `x_t` is mostly noise. " * 100)
    for i in range(room // 2):
        nb.cells.append(new_markdown_cell(f"## Note {i}\n\n" + text[:per_md]))
        nb.cells.append(new_code_cell(f"print({i}, 'x' * 19_000)"))   # under the grader's 20,000 a cell
    assert len(nb.cells) <= MAX_CELLS and len(nbformat.writes(nb)) < MAX_BYTES
    nb.metadata["last_note"] = f"Note {room // 2 - 1}"        # the test looks for it on the page (dropped at collect)
    return nb


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory):
    """Both submissions collected, autograded and given feedback."""
    hand_in = tmp_path_factory.mktemp("attack_hand_in")
    # '<img src=x onerror=...>.ipynb', with the short payload (a file name has at most 255 bytes)
    name = VECTORS["file_names"][0].replace("JS", _name_js("file_name"))
    big = _largest(released)
    for student, nb, fname in ((MALLORY, _attacked(released), name), (BIG, big, f"{A}.ipynb")):
        (hand_in / student / A).mkdir(parents=True)
        nbformat.write(nb, str(hand_in / student / A / fname))
    root = released["root"]
    _course("--course-dir", str(root), "collect", str(hand_in))
    _course("--course-dir", str(root), "autograde", A, timeout=900)
    _course("--course-dir", str(root), "feedback", A)
    return {"root": root, "last_note": big.metadata["last_note"]}


def _digest(root: Path) -> dict:
    """Every file of grading/ but the gradebook (the formgrader saves points there) and the logs."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and rel.name != "gradebook.db" and rel.parts[0] != "logs":
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _submission_id(root: Path, student: str) -> str:
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return gb.find_submission_notebook(A, A, student).id


def _api(base: str, path: str):
    with urllib.request.urlopen(f"{base}{path}?token={TOKEN}", timeout=20) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def lab(graded, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attack_lab")
    proc, base = start_instructor_lab(tmp, graded["root"], TOKEN, timeout=120)
    yield base, tmp
    stop(proc)


def test_nothing_a_student_wrote_runs_in_the_formgrader_or_the_feedback(browser, graded, lab):
    expect = _expect()
    base, tmp = lab
    graded = graded["root"]
    before = _digest(graded)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    requests, markers, dialogs = [], [], []
    context.on("request", lambda r: requests.append((r.method, r.url)))
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("console", lambda m: markers.append(m.text) if MARKER in m.text else None)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(f"{base}/formgrader?token={TOKEN}")      # logs in: the _xsrf and session cookies are set
        sid = _submission_id(graded, MALLORY)
        page.goto(f"{base}/formgrader/submissions/{sid}/")
        page.wait_for_load_state("networkidle")
        written_id = released_written(graded)
        written = page.locator(f"input.score#{written_id}")
        expect(written).to_have_count(1)
        expect(page.locator(f"[id='{written_id}'], [id='{written_id}-comment']")).to_have_count(2)  # _box_ids: none
        # the formgrader's own scripts still run under the policy: points for the written answer are saved
        with page.expect_response(lambda r: "/api/grade/" in r.url and r.request.method == "PUT") as saved:
            written.fill("1")
            written.press("Tab")
        assert saved.value.ok, saved.value.status
        with page.expect_response(lambda r: "/api/comment/" in r.url and r.request.method == "PUT") as commented:
            page.locator(f"textarea.comment#{written_id}-comment").fill("Two bumps: right.")
            page.locator(f"textarea.comment#{written_id}-comment").press("Tab")
        assert commented.value.ok, commented.value.status
        text = page.locator("body").inner_text()
        assert "two bumps of noise" in text                                     # the answer itself is shown
        assert "Grader notes" in text and ".ipynb" in text and "onerror" in text   # the file name, as text
        page.screenshot(path=tmp / "31_formgrader_attacked_submission.png")
        page.wait_for_timeout(3000)                                             # time for onload/onerror/animations

        pages = sorted((graded / "feedback" / MALLORY / A).glob("*.html"))
        assert [p.name for p in pages] == [f"{A}.html"], pages
        page.goto(f"{base}/files/feedback/{MALLORY}/{A}/{A}.html")             # from the lab's file server
        page.wait_for_load_state("networkidle")
        page.goto(pages[0].as_uri())                                            # from disk, as a downloaded page
        page.wait_for_load_state("networkidle")
        expect(page.locator("body")).to_contain_text("two bumps of noise")
        page.screenshot(path=tmp / "32_feedback_attacked_submission.png")
        page.wait_for_timeout(3000)
    finally:
        context.close()
    api = [(m, u) for m, u in requests if "/api/contents" in u or "/api/terminals" in u]
    assert api == [], api
    assert markers == [] and dialogs == [], (markers, dialogs)
    assert _api(base, "/api/terminals") == []
    after = _digest(graded)
    assert not [k for k in after if "pwned" in k], after
    assert after == before, {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{graded / 'gradebook.db'}") as gb:         # saved for the written answer itself
        grade = gb.find_grade(written_id, A, A, MALLORY)
        comment = gb.find_comment(written_id, A, A, MALLORY)
        assert (grade.manual_score, comment.manual_comment) == (1.0, "Two bumps: right."), (grade, comment)


def released_written(root: Path) -> str:
    nb = nbformat.read(str(root / "release" / A / f"{A}.ipynb"), as_version=4)
    return next(c.metadata.nbgrader["grade_id"] for c in nb.cells if c.cell_type == "markdown"
                and c.metadata.get("nbgrader", {}).get("grade") and c.metadata.nbgrader.get("solution"))


def test_the_largest_allowed_submission_opens_in_the_formgrader_in_seconds(browser, graded, lab):
    expect = _expect()
    base, tmp = lab
    last_note, graded = graded["last_note"], graded["root"]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{base}/formgrader?token={TOKEN}")
        sid = _submission_id(graded, BIG)
        t0 = time.monotonic()
        page.goto(f"{base}/formgrader/submissions/{sid}/", timeout=120_000)
        expect(page.locator(f"input.score#{released_written(graded)}")).to_have_count(1, timeout=120_000)
        expect(page.locator("body")).to_contain_text(last_note)
        wall = time.monotonic() - t0
    finally:
        context.close()
    size = (graded / "autograded" / BIG / A / f"{A}.ipynb").stat().st_size
    (tmp / "largest_submission_time.txt").write_text(f"formgrader page of {size:,} bytes: {wall:.1f} s\n")
    print(f"\nformgrader page of the largest allowed submission ({size:,} bytes): {wall:.1f} s")
    assert wall < 20, wall
