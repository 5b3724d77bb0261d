"""ddpm_instructor.sanitize: a collected submission reduced to what grading needs.

Every vector of tests/fixtures/sanitize_vectors.json (Markdown, stored outputs, attachments, raw cells) is inert
once reduced, checked on the page nbconvert renders (the formgrader and the feedback render submissions with
nbconvert): no script, frame, plug-in, SVG, form, event handler, ``javascript:`` URL or request to the server's API;
the same check finds them in the notebook as handed in (so it can fail).  Ordinary Markdown (maths, code, lists,
tables, links, PNG images) and safe outputs are kept as written, without a note; the caps hold with a note;
student-chosen strings are inert in Markdown, HTML and a terminal.  A few seconds.
"""
from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup, Comment
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from ddpm_instructor import sanitize
from ddpm_instructor.sanitize import escape_note, reduce_outputs, reduce_submission, terminal_safe

# nbconvert warns that it cannot show the widget output of the notebook as handed in (which the checks render)
pytestmark = pytest.mark.filterwarnings("ignore:Your element with mimetype:UserWarning")
VECTORS = json.loads((Path(__file__).parent / "fixtures" / "sanitize_vectors.json").read_text())
PNG = VECTORS["outputs"]["png_width_breakout"]["data"]["image/png"]      # a real 1x1 PNG
ACTIVE_TAGS = {"script", "iframe", "frame", "object", "embed", "svg", "math", "form", "meta", "base", "link",
               "style", "body", "input", "button", "textarea", "select", "applet", "template", "noscript"}
URL_ATTRS = {"href", "src", "action", "formaction", "data", "srcdoc", "xlink:href", "background", "poster", "content"}


def _fill(text: str, name: str) -> str:
    return text.replace("JS", f"alert('{name}')").replace("NAME", name)


def _deep_fill(obj, name):
    if isinstance(obj, str):
        return _fill(obj, name)
    if isinstance(obj, dict):
        return {k: _deep_fill(v, name) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_fill(v, name) for v in obj]
    return obj


def attacked_notebook():
    """One cell per vector (its name in the cell's tags), then the ordinary cells."""
    cells = []
    for name, md in VECTORS["markdown"].items():
        cells.append(new_markdown_cell(_fill(md, name), metadata={"tags": [name]}))
    for name, out in VECTORS["outputs"].items():
        cell = new_code_cell("show()", metadata={"tags": [name]})
        cell.outputs = [nbformat.from_dict(_deep_fill(out, name))]
        cells.append(cell)
    for name, v in VECTORS["attachments"].items():
        cells.append(new_markdown_cell(v["markdown"], metadata={"tags": [name]},
                                       attachments=_deep_fill(v["attachments"], name)))
    for name, raw in VECTORS["raw"].items():
        cells.append(new_raw_cell(_fill(raw, name), metadata={"tags": [name]}))
    return new_notebook(cells=cells + ordinary_cells())


def ordinary_cells():
    cells = [new_markdown_cell(md) for md in VECTORS["ordinary_markdown"]]
    cells[-1].attachments = {"plot.png": {"image/png": PNG}}
    code = new_code_cell("plot(x); x", execution_count=4)
    code.outputs = [new_output("stream", name="stdout", text="loss 0.123\n"),
                    new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure size 640x480>"},
                               metadata={"image/png": {"width": 320, "height": 240}}),
                    new_output("execute_result", data={"text/plain": "tensor([1., 2.])"}, execution_count=4),
                    new_output("error", ename="ValueError", evalue="shapes (3,) and (4,) differ",
                               traceback=["\x1b[0;31mValueError\x1b[0m: shapes (3,) and (4,) differ"])]
    return cells + [code]


def _body(nb) -> BeautifulSoup:
    """The cells as nbconvert's HTML export renders them (the classic template, which the formgrader and the
    feedback extend), without nbconvert's own <head>."""
    from nbconvert import HTMLExporter
    html, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    return BeautifulSoup(html, "html.parser").find("div", id="notebook-container")


def active_content(nb) -> list[str]:
    """Everything in the rendered cells that could run script, load a frame or plug-in, submit, or request a URL
    of the server (the Jupyter API) when the page is opened."""
    body = _body(nb)
    # nbconvert writes no comment in a cell; Python's HTML parser ends a comment where a browser does not
    found = [f"<!--{c[:40]}-->" for c in body.find_all(string=lambda s: isinstance(s, Comment))]
    for el in body.find_all(True):
        if el.name in ACTIVE_TAGS:
            found.append(f"<{el.name}>")
        for attr, value in el.attrs.items():
            value = " ".join(value) if isinstance(value, list) else str(value)
            plain = re.sub(r"[\x00-\x20]", "", value).lower()
            if attr.lower().startswith("on"):
                found.append(f"<{el.name} {attr}>")
            elif attr.lower() in URL_ATTRS and (plain.startswith(("javascript:", "vbscript:", "data:text", "/api"))
                                                 or (el.name == "img" and attr == "src" and not plain.startswith(
                                                     ("data:image/png;base64,", "data:image/jpeg;base64,")))):
                found.append(f"<{el.name} {attr}={value[:40]!r}>")
            elif el.name == "img" and attr in ("width", "height") and not value.isdigit():
                found.append(f"<img {attr}={value[:40]!r}>")
    return found


# ------------------------------------------------------------------ every vector inert, ordinary content kept
def test_every_vector_is_active_as_handed_in_and_inert_once_reduced():
    nb = attacked_notebook()
    before = active_content(copy.deepcopy(nb))
    assert len(before) >= 20, before                     # the check sees the attacks as handed in
    notes = reduce_submission(nb)
    assert active_content(nb) == []
    assert notes, "nothing was said about what was removed"
    text = " ".join(notes)
    for words in ("HTML that could run in the grader's browser", "text/html", "application/javascript",
                  "image/svg+xml", "text/markdown", "not valid PNG", "not PNG images", "raw cell",
                  "an image attachment it shows is missing or was removed"):
        assert words in text, (words, notes)


@pytest.mark.parametrize("name", list(VECTORS["markdown"]))
def test_each_markdown_vector_alone(name):
    nb = new_notebook(cells=[new_markdown_cell(_fill(VECTORS["markdown"][name], name))])
    assert active_content(copy.deepcopy(nb)), f"{name}: the check does not see it"
    reduce_submission(nb)
    assert active_content(nb) == [], name


def test_only_safe_output_types_are_kept():
    nb = attacked_notebook()
    reduce_submission(nb)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type in ("stream", "error", "display_data", "execute_result"), out
            assert set(out.get("data", {})) <= {"text/plain", "image/png"}, out
            assert set(out.get("metadata", {})) <= {"image/png"}, out
        for bundle in (cell.get("attachments") or {}).values():
            assert set(bundle) == {"image/png"}, bundle


def test_ordinary_content_is_kept_as_written_without_a_note():
    nb = new_notebook(cells=ordinary_cells(), metadata={"kernelspec": {"name": "ddpm-course", "display_name": "x",
                                                                       "language": "python"}})
    want = copy.deepcopy(nb)
    assert reduce_submission(nb) == []
    assert nb == want
    body = _body(nb)
    assert body.find("img", src=f"data:image/png;base64,{PNG}") is not None          # the pasted PNG shows
    assert body.find("a", href="https://arxiv.org/abs/2006.11239") is not None
    assert "\\sqrt{\\bar\\alpha_t}" in body.get_text() and "hidden text" in body.get_text()


def test_a_graded_answer_keeps_its_text_and_grading_metadata():
    meta = {"nbgrader": {"grade": True, "solution": True, "grade_id": "written_02_1", "points": 2,
                         "schema_version": 3, "locked": False}, "deletable": False, "foreign": {"x": 1}}
    nb = new_notebook(cells=[new_markdown_cell("The bumps merge <script>alert(1)</script> as t grows.",
                                               metadata=meta)])
    notes = reduce_submission(nb)
    cell = nb.cells[0]
    assert cell.metadata == {"nbgrader": meta["nbgrader"], "deletable": False}
    assert "<script" not in cell.source and "The bumps merge" in cell.source and "as t grows." in cell.source
    assert notes == ["Markdown cell 1 (written_02_1): HTML that could run in the grader's browser (scripts, event "
                     "handlers, frames, SVG, forms, javascript: links) or change the grader's page (an id) was "
                     "removed; the text was kept."]


# nbgrader's formgrade.js binds each box with $("#" + grade_id) (and "-comment", "_extra_credit"): the first element
# with that id wins, so a student's id above the answer would leave the instructor's score unsaved (hostile H1 #4)
@pytest.mark.parametrize("source", [
    '<h2 id="written_02_1">My notes</h2>\n\n<h3 id="written_02_1-comment">more</h3>',     # an id of their own
    '<p><a name="written_02_1" id="written_02_1_extra_credit">x</a></p>',
    "## written_02_1",                                   # nbconvert gives a heading its text as id
    "written\\_02\\_1-comment\n===",                    # a setext heading, Markdown escapes
    "### written&#95;02&#95;1",                          # an entity
    "# statusmessage",                                   # the formgrader page's own ids
])
def test_no_element_of_a_students_markdown_gets_the_id_of_a_grading_box(source):
    answer = new_markdown_cell("The bumps merge as t grows.", metadata={"nbgrader": {
        "grade": True, "solution": True, "grade_id": "written_02_1", "points": 2, "schema_version": 3}})
    nb = new_notebook(cells=[new_markdown_cell(source), answer])
    notes = reduce_submission(nb)
    ids = {el["id"] for el in _body(nb).find_all(id=True)}
    assert not ids & {"written_02_1", "written_02_1-comment", "written_02_1_extra_credit", "statusmessage"}, ids
    assert len(notes) == 1 and notes[0].startswith("Markdown cell 1: "), notes      # the student is told
    assert nb.cells[1].source == answer.source


def test_headings_keep_their_own_anchors():
    nb = new_notebook(cells=[new_markdown_cell("## Written answer 1\n\nsee [above](#Written-answer-1)")])
    assert reduce_submission(nb) == []
    assert _body(nb).find("h2", id="Written-answer-1") is not None


def test_reduce_outputs_of_a_run_notebook():
    nb = attacked_notebook()
    sources = [c.source for c in nb.cells]
    notes = reduce_outputs(nb)
    assert [c.source for c in nb.cells] == sources                 # only the outputs
    assert all(set(o.get("data", {})) <= {"text/plain", "image/png"} for c in nb.cells for o in c.get("outputs", []))
    assert any("application/javascript" in n for n in notes), notes


def test_outputs_of_the_graders_run_are_noted_only_when_they_disappear():
    cell = new_code_cell("show()")
    cell.outputs = [new_output("display_data", data={"text/html": "<table></table>", "text/plain": "table"}),
                    new_output("display_data", data={"application/javascript": "alert(1)"})]
    nb = new_notebook(cells=[cell])
    assert reduce_outputs(nb, ran=True) == [
        "1 output(s) your code displayed while it was graded (HTML, JavaScript, widgets, ...) are not shown here: "
        "the grader keeps text and PNG images only."]
    assert [o.data for o in nb.cells[0].outputs] == [{"text/plain": "table"}]
    assert reduce_outputs(new_notebook(cells=[new_code_cell("x")]), ran=True) == []


# ------------------------------------------------------------------ caps
def test_cell_cap_drops_the_last_ungraded_cells_with_a_note():
    graded = new_code_cell("answer = 1", metadata={"nbgrader": {"grade_id": "late_answer", "solution": True,
                                                               "grade": False}})
    nb = new_notebook(cells=[new_code_cell(f"x = {i}") for i in range(30)] + [graded])
    notes = reduce_submission(nb, max_cells=10)
    assert len(nb.cells) == 10 and nb.cells[-1].metadata["nbgrader"]["grade_id"] == "late_answer"
    assert [c.source for c in nb.cells[:9]] == [f"x = {i}" for i in range(9)]
    assert notes == ["The notebook had more than 10 cells; its last 21 cells without grading metadata were removed."]


def test_byte_cap_removes_the_largest_outputs_first_with_a_note():
    big, small = new_code_cell("big()"), new_code_cell("small()")
    big.outputs = [new_output("stream", name="stdout", text="y" * 90_000)]
    small.outputs = [new_output("stream", name="stdout", text="n" * 1000)]
    nb = new_notebook(cells=[small, big])
    notes = reduce_submission(nb, max_bytes=50_000)
    assert nb.cells[1].outputs == [] and nb.cells[0].outputs[0].text == "n" * 1000
    assert notes == ["The notebook was larger than 50 kB; the stored outputs of its 1 largest cell(s) were removed."]
    assert len(nbformat.writes(nb)) < 50_000


def test_long_text_outputs_and_sources_are_cut_with_a_note():
    cell = new_code_cell("print('x' * 10**6)")
    cell.outputs = [new_output("stream", name="stdout", text="x" * (sanitize.MAX_TEXT_CHARS + 5000))]
    md = new_markdown_cell("word " * (sanitize.MAX_SOURCE_CHARS // 5 + 100))
    nb = new_notebook(cells=[cell, md])
    notes = reduce_submission(nb)
    assert len(nb.cells[0].outputs[0].text) < sanitize.MAX_TEXT_CHARS + 100
    assert "5,000 characters, was not kept" in nb.cells[0].outputs[0].text
    assert len(nb.cells[1].source) == sanitize.MAX_SOURCE_CHARS
    assert any("text output(s) longer than" in n for n in notes) and any("the rest was cut" in n for n in notes)


def test_markdown_total_cap():
    per = sanitize.TOTAL_SOURCE_CHARS["markdown"] // 4
    nb = new_notebook(cells=[new_markdown_cell("w" * per) for _ in range(6)])
    notes = reduce_submission(nb)
    assert [len(c.source) for c in nb.cells] == [per] * 4 + [0, 0]
    assert notes == [f"Markdown cell 5, Markdown cell 6: removed: the notebook's markdown is longer than "
                     f"{sanitize.TOTAL_SOURCE_CHARS['markdown']:,} characters in all."]


def test_many_attacked_cells_make_one_note():
    nb = new_notebook(cells=[new_markdown_cell("<script>alert(1)</script>") for _ in range(25)])
    notes = reduce_submission(nb)
    assert len(notes) == 1 and "and 15 more" in notes[0], notes


# ------------------------------------------------------------------ strings a student chose
@pytest.mark.parametrize("name", VECTORS["file_names"])
def test_escape_note_makes_a_file_name_inert_and_readable(name):
    name = name.replace("JS", "alert(document.domain)")       # no quotes: a file name's unquoted attribute
    note = f"File {escape_note(name)} was collected as 02_forward_closed_form.ipynb."
    nb = new_notebook(cells=[new_markdown_cell(f"**Grader notes** (automatic):\n\n- {note}")])
    raw = new_notebook(cells=[new_markdown_cell(f"- File {name} was collected.")])
    if "<img" in name or "javascript" in name:
        assert active_content(raw), "the raw name would be active (the check can fail)"
    assert active_content(nb) == []
    body = _body(nb)
    assert [el.name for el in body.find("div", class_="text_cell_render").find_all(True)] \
        in (["p", "strong", "ul", "li"], ["p", "strong", "ul", "li", "a"][:4])
    assert terminal_safe(name) in body.get_text()                 # reads as the name, control characters escaped
    assert "\x1b" not in body.get_text() and "\u202e" not in body.get_text()


def test_terminal_safe_escapes_control_sequences():
    name = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\u202egpj.exe\r\nFAKE LINE"
    safe = terminal_safe(name)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", safe), safe
    assert safe == "\\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\u202egpj.exe\\r\\nFAKE LINE"
