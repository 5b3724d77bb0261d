"""Reduce a collected submission notebook to what grading needs, so that nothing a student wrote runs in the
instructor's browser (the formgrader, the feedback pages) and no submission is too large to show.

:func:`reduce_submission` (called by ``collect`` before a notebook is filed under ``submitted/``, and on the
autograded notebook after it ran) keeps, per cell:

* the source of code and Markdown cells; a Markdown cell is rendered as nbconvert renders it for the formgrader and
  the feedback, and the result is checked against an allow-list (:data:`ALLOWED_TAGS`, :data:`ALLOWED_ATTRIBUTES`,
  URLs: ``http(s)``/``mailto``/``#anchor`` links, images only as ``data:image/png|jpeg|gif`` or attachments).  A cell
  that passes is kept as written; otherwise its HTML is run through bleach (scripts, event handlers, frames, SVG,
  objects, forms, ``javascript:`` URLs go, the text stays) and, if even that does not pass, the cell is shown as
  plain text (a fenced code block);
* outputs of safe types only: stream text, errors' text, ``text/plain`` and ``image/png`` (checked to be base64);
  HTML, Markdown, SVG, JavaScript, widgets and every other type are dropped;
* attachments that are PNG images; grading metadata (``nbgrader``) and the plain cell flags; raw cells become
  plain text.

and caps the notebook (:data:`MAX_CELLS` cells, :data:`MAX_BYTES` in all, :data:`MAX_SOURCE_CHARS` per cell,
:data:`MAX_TEXT_CHARS` per text output, :data:`MAX_IMAGE_BYTES` per image, :data:`TOTAL_SOURCE_CHARS` of Markdown
and of code in all); caps a real student never reaches.  Every change is returned as a note in plain words.

:func:`escape_note` makes a student-controlled string (a file name, a zip entry name) inert in Markdown and HTML;
:func:`terminal_safe` makes it inert in a terminal.
"""
from __future__ import annotations

import base64
import binascii
import html
import json
import re
import unicodedata
from collections import Counter
from html.parser import HTMLParser

import bleach
from bleach.css_sanitizer import CSSSanitizer
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

__all__ = ["reduce_submission", "reduce_outputs", "SafeOutputs", "escape_note", "terminal_safe", "markdown_is_safe",
           "MAX_CELLS", "MAX_BYTES"]

MAX_CELLS = 500                     # the course's notebooks have 20-40 cells
MAX_BYTES = 10 * 2**20              # all of the notebook, as JSON (the course's: 30-110 kB)
MAX_SOURCE_CHARS = 100_000          # one cell's source
TOTAL_SOURCE_CHARS = {"markdown": 200_000,  # all Markdown sources together (the course's: 8-19 thousand characters)
                      "code": 500_000}      # all code together (the course's: under 30 thousand)
MAX_TEXT_CHARS = 100_000            # one text output (stream, text/plain, an error's text)
MAX_IMAGE_BYTES = 2 * 2**20         # one PNG output or attachment (base64)

SAFE_MIMETYPES = ("text/plain", "image/png")
ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
    "samp", "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul", "var"})
# No "id" or "name" anywhere: the formgrader finds each score box by its id (nbgrader's formgrade.js binds
# $("#" + grade_id), the first element with that id), so an id a student wrote could take a box over.
ALLOWED_ATTRIBUTES = {"*": ("class", "title"), "a": ("href",), "img": ("src", "alt", "width", "height"),
                      "td": ("align", "colspan", "rowspan", "style"), "th": ("align", "colspan", "rowspan", "style"),
                      "ol": ("start",)}
_LINK = re.compile(r"(https?://|mailto:|#|[^:/?#]*([/?#]|$))", re.I)   # a relative link has no scheme
_ALIGN = re.compile(r"text-align:\s*(left|right|center);?$")       # Markdown tables' column alignment
_CSS = CSSSanitizer(allowed_css_properties=["text-align"])
_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]*$", re.I)
_NUMBER = re.compile(r"\d{1,5}%?$")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*$")
_CELL_FLAGS = ("deletable", "editable", "collapsed", "scrolled")
_TAG = re.compile(r"[\w.-]{1,100}$")
_NB_METADATA = ("kernelspec", "language_info")
# Ids of nbgrader's formgrader page (formgrade/index.html.j2) and, per grade id, of its score, extra-credit and
# comment boxes: the id nbconvert gives a student's Markdown heading (its text) must be none of them.
FORMGRADER_IDS = frozenset({"notebook", "notebook-container", "statusmessage"})
GRADE_BOX_IDS = ("{}", "{}-comment", "{}_extra_credit")
_ID = re.compile(r"""\sid\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)


def reserved_ids(nb) -> frozenset:
    """The ids a heading in ``nb`` must not get: the formgrader page's own and its boxes' for each grade id."""
    metas = (c.get("metadata") for c in nb.cells if isinstance(c, dict))
    gids = {m["nbgrader"].get("grade_id") for m in metas if isinstance(m, dict) and isinstance(m.get("nbgrader"), dict)}
    return FORMGRADER_IDS | {form.format(g) for g in gids if isinstance(g, str) and g for form in GRADE_BOX_IDS}


# ---------------------------------------------------------------- Markdown
def _allowed(tag: str, name: str, value: str) -> bool:
    if name not in ALLOWED_ATTRIBUTES.get(tag, ()) + ALLOWED_ATTRIBUTES["*"]:
        return False
    if name == "href":
        return bool(_LINK.match(value.strip()))
    if name == "src":
        return bool(_IMAGE.match(value.strip()))
    if name == "style":
        return bool(_ALIGN.match(value.strip()))
    if name in ("width", "height", "colspan", "rowspan", "start"):
        return bool(_NUMBER.match(value.strip()))
    return True


def _clean(text: str) -> str:
    return bleach.clean(text, tags=ALLOWED_TAGS, attributes=_allowed, protocols=["http", "https", "mailto", "data"],
                        strip=True, strip_comments=True, css_sanitizer=_CSS)


class _Tokens(HTMLParser):
    """The start tags (with their attributes) and the text of an HTML fragment, to compare two fragments."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tokens: list = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tokens.append((tag, tuple(sorted((k, re.sub(r"\s|;$", "", v or "") if k == "style" else v or "")
                                              for k, v in attrs))))

    def handle_data(self, data):
        if data.strip():
            self.tokens.append(" ".join(data.split()))

    def handle_comment(self, data):
        self.tokens.append(("<!--", data))

    def handle_decl(self, decl):
        self.tokens.append(("<!", decl))

    def handle_pi(self, data):
        self.tokens.append(("<?", data))

    def unknown_decl(self, data):
        self.tokens.append(("<![", data))


def _render(source: str, attachments=None, anchors: bool = True) -> str:
    """The Markdown cell as nbconvert renders it in the formgrader and the feedback (HTMLExporter.markdown2html);
    ``anchors=False``: without the id and link nbconvert adds to each heading (made from the heading's text)."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
    renderer = IPythonRenderer(escape=False, attachments=attachments or {}, anchor_link_text="¶",
                               exclude_anchor_links=not anchors)
    return MarkdownWithMath(renderer=renderer).render(source)


def heading_ids(source: str, attachments=None) -> set[str]:
    """The ids nbconvert gives the headings of a Markdown source (from their text: "## a b" is id "a-b")."""
    try:
        rendered = _render(source, attachments)
    except Exception:                       # noqa: BLE001 - not rendered at all: no id
        return set()
    return {html.unescape(next(g for g in m.groups() if g is not None)) for m in _ID.finditer(rendered)}


def _html_is_safe(rendered: str) -> bool:
    """True when the allow-list (applied by bleach, which parses HTML as a browser does) removes nothing: every tag
    (with its attributes) and every text of ``rendered`` is still there after it (bleach may add a closing tag or
    an implied ``<p>``/``<tbody>``, which is harmless)."""
    return not Counter(_Tokens(rendered).tokens) - Counter(_Tokens(_clean(rendered)).tokens)


def markdown_is_safe(source: str, attachments=None) -> bool:
    """Whether a Markdown source, rendered as nbconvert renders it, has only allowed elements, attributes and URLs
    (False too when nbconvert cannot render it: a missing attachment stops its whole page).  Checked without the
    ids nbconvert gives headings (no id of the student's own is allowed; see :func:`heading_ids` for those)."""
    try:
        rendered = _render(source, attachments, anchors=False)
    except Exception:                       # noqa: BLE001 - nbconvert's InvalidNotebook, or anything else it raises
        return False
    return _html_is_safe(rendered)


def _as_text(source: str) -> str:
    fence = "~" * max(3, 1 + max((len(m) for m in re.findall(r"~+", source)), default=0))
    return f"{fence}text\n{source}\n{fence}"


def _plain(source: str) -> bool:
    """No HTML, no link or image target in ``source``: nothing in it renders as an element with a URL or an
    attribute a student chose (Markdown makes ``<a>``/``<img>`` only from ``](``, ``]:`` and ``<...>``)."""
    return "<" not in source and "](" not in source and "]:" not in source


def _plain_text(source: str) -> bool:
    """No heading can come from ``source``: no "#", no "<" (an HTML heading), no line of "=" or "-" under text."""
    return "#" not in source and "<" not in source and "&" not in source and not _SETEXT.search(source)


_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$", re.M)


def _sanitize_markdown(source: str, attachments, reserved=frozenset()) -> tuple[str, str | None]:
    """(source to keep, what was done or None); ``reserved``: ids no heading may get (:func:`reserved_ids`)."""
    kept, why = _allowed_markdown(source, attachments)
    taken = sorted(heading_ids(kept, attachments) & reserved) if reserved and not _plain_text(kept) else []
    if taken:
        return _as_text(source), (f"a heading whose link id ({', '.join(taken)}) is the id of a box on the grader's "
                                  "page; shown as plain text instead (give the heading other words)")
    return kept, why


def _allowed_markdown(source: str, attachments) -> tuple[str, str | None]:
    if _plain(source) or markdown_is_safe(source, attachments):
        return source, None
    try:
        _render(source, attachments)
    except Exception:                       # noqa: BLE001 - see markdown_is_safe
        return _as_text(source), ("it cannot be shown as Markdown (an image attachment it shows is missing or was "
                                  "removed); shown as plain text instead")
    cleaned = _clean(source)
    if markdown_is_safe(cleaned, attachments):
        return cleaned, ("HTML that could run in the grader's browser (scripts, event handlers, frames, SVG, forms, "
                         "javascript: links) or change the grader's page (an id) was removed; the text was kept")
    return _as_text(source), "HTML or links that could run in the grader's browser; shown as plain text instead"


# ---------------------------------------------------------------- outputs
def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _cap_text(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n[cut: the rest, {len(text) - limit:,} characters, was not kept]\n", True


def _png(value) -> str | None:
    data = _text(value)
    if len(data) > MAX_IMAGE_BYTES or not _BASE64.match(data):
        return None
    try:
        raw = base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if raw.startswith(b"\x89PNG\r\n\x1a\n") else None


def _reduce_output(out, counts: dict):
    """The output reduced to safe types, or None to drop it."""
    kind = out.get("output_type")
    if kind == "stream":
        text, cut = _cap_text(_text(out.get("text")), MAX_TEXT_CHARS)
        counts["cut"] += cut
        name = out.get("name") if out.get("name") in ("stdout", "stderr") else "stdout"
        return {"output_type": "stream", "name": name, "text": text}
    if kind == "error":
        trace, cut = _cap_text("\n".join(_text(t) for t in (out.get("traceback") or [])), MAX_TEXT_CHARS)
        counts["cut"] += cut
        return {"output_type": "error", "ename": _cap_text(_text(out.get("ename")), 200)[0],
                "evalue": _cap_text(_text(out.get("evalue")), MAX_TEXT_CHARS)[0], "traceback": trace.split("\n")}
    if kind not in ("display_data", "execute_result"):
        counts["dropped"] += 1
        return None
    data, given = {}, dict(out.get("data") or {})
    if "text/plain" in given:
        data["text/plain"], cut = _cap_text(_text(given["text/plain"]), MAX_TEXT_CHARS)
        counts["cut"] += cut
    if "image/png" in given:
        png = _png(given["image/png"])
        if png is None:
            counts["bad_image"] += 1
        else:
            data["image/png"] = png
    dropped = set(given) - set(data)
    if dropped - {"image/png"}:
        counts["types"].update(dropped - {"image/png"})
    if not data:
        counts["dropped"] += 1
        return None
    meta = {}
    size = (out.get("metadata") or {}).get("image/png")
    if "image/png" in data and isinstance(size, dict):
        dims = {k: v for k, v in size.items() if k in ("width", "height") and isinstance(v, int)
                and not isinstance(v, bool) and 0 < v < 100_000}
        if dims:
            meta["image/png"] = dims
    reduced = {"output_type": kind, "data": data, "metadata": meta}
    if kind == "execute_result":
        count = out.get("execution_count")
        reduced["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) else None
    return reduced


def _outputs_notes(counts: dict) -> list[str]:
    notes = []
    if counts["types"]:
        notes.append("Stored outputs of the types " + ", ".join(sorted(counts["types"])) + " were removed (only "
                     "text and PNG images are kept for grading, so that nothing in them runs in a browser).")
    if counts["dropped"]:
        notes.append(f"{counts['dropped']} stored output(s) with nothing but such types were removed.")
    if counts["bad_image"]:
        notes.append(f"{counts['bad_image']} image output(s) that were not valid PNG data (or larger than "
                     f"{MAX_IMAGE_BYTES // 2**20} MB) were removed.")
    if counts["cut"]:
        notes.append(f"{counts['cut']} text output(s) longer than {MAX_TEXT_CHARS:,} characters were cut.")
    return notes


def _new_counts() -> dict:
    return {"types": set(), "dropped": 0, "bad_image": 0, "cut": 0}


def _reduce_cell_outputs(cell, counts) -> None:
    if cell.get("cell_type") != "code":
        cell.pop("outputs", None)
        cell.pop("execution_count", None)
        return
    from nbformat import from_dict
    cell["outputs"] = [from_dict(o) for o in (_reduce_output(o, counts) for o in cell.get("outputs") or [])
                       if o is not None]
    count = cell.get("execution_count")
    cell["execution_count"] = count if isinstance(count, int) and not isinstance(count, bool) else None


def reduce_outputs(nb, ran: bool = False) -> list[str]:
    """Only the outputs of ``nb`` reduced to safe types; notes of what was removed.  ``ran``: the outputs are the
    grader's run's own (an HTML table or animation keeps its text quietly; only what disappears is noted)."""
    counts = _new_counts()
    for cell in nb.cells:
        _reduce_cell_outputs(cell, counts)
    if ran:
        counts["types"] = set()
        if counts["dropped"]:
            return [f"{counts['dropped']} output(s) your code displayed while it was graded (HTML, JavaScript, "
                    "widgets, ...) are not shown here: the grader keeps text and PNG images only."] \
                + _outputs_notes({**counts, "dropped": 0})
    return _outputs_notes(counts)


# ---------------------------------------------------------------- the whole notebook
def _graded(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader"))


def _cell_metadata(meta) -> dict:
    keep = {k: meta[k] for k in _CELL_FLAGS if isinstance(meta.get(k), bool)}
    if isinstance(meta.get("nbgrader"), dict):
        keep["nbgrader"] = meta["nbgrader"]
    tags = [t for t in meta.get("tags") or [] if isinstance(t, str) and _TAG.match(t)]
    if tags:
        keep["tags"] = tags
    return keep


def _size(obj) -> int:
    return len(json.dumps(obj, ensure_ascii=False))


def _label(i: int, cell) -> str:
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    kind = {"markdown": "Markdown cell", "code": "code cell"}.get(cell.get("cell_type"), "cell")
    return f"{kind} {i + 1}" + (f" ({gid})" if gid else "")


def reduce_submission(nb, max_cells: int = MAX_CELLS, max_bytes: int = MAX_BYTES) -> list[str]:
    """Reduce ``nb`` (changed in place) to what grading needs; the notes say what was removed or capped."""
    notes = _cap_cells(nb, max_cells)                   # first: nothing below runs over more than max_cells cells
    counts = _new_counts()
    for key in [k for k in nb.metadata if k not in _NB_METADATA]:
        del nb.metadata[key]
    done: dict[str, list[str]] = {}                     # what was done -> the cells it was done to
    reserved = reserved_ids(nb)
    totals = {"markdown": 0, "code": 0}
    for i, cell in enumerate(nb.cells):
        cell["metadata"] = type(cell.metadata)(_cell_metadata(cell.get("metadata") or {}))
        label = _label(i, cell)
        source = _text(cell.get("source"))
        if len(source) > MAX_SOURCE_CHARS:
            source = source[:MAX_SOURCE_CHARS]
            done.setdefault(f"longer than {MAX_SOURCE_CHARS:,} characters; the rest was cut", []).append(label)
        if cell.get("cell_type") not in ("markdown", "code"):
            cell["cell_type"], source = "markdown", _as_text(source)
            done.setdefault("a raw cell, shown as plain text", []).append(label)
        if "attachments" in cell:
            given = cell.get("attachments") or {}
            kept = {name: {"image/png": png} for name, bundle in given.items()
                    if isinstance(bundle, dict) and (png := _png(bundle.get("image/png"))) is not None}
            if len(kept) < len(given):
                done.setdefault("attachments that are not PNG images were removed", []).append(label)
            if kept and cell.get("cell_type") == "markdown":
                cell["attachments"] = kept
            else:
                del cell["attachments"]
        kind = cell["cell_type"]
        totals[kind] += len(source)
        if totals[kind] > TOTAL_SOURCE_CHARS[kind] and not _graded(cell):
            done.setdefault(f"removed: the notebook's {kind} is longer than {TOTAL_SOURCE_CHARS[kind]:,} characters "
                            "in all", []).append(label)
            source = ""
        if kind == "markdown":
            source, why = _sanitize_markdown(source, cell.get("attachments"), reserved)
            if why:
                done.setdefault(why, []).append(label)
        cell["source"] = source
        _reduce_cell_outputs(cell, counts)
    for why, cells in done.items():
        more = f" and {len(cells) - 10} more" if len(cells) > 10 else ""
        notes.append(f"{_capital(', '.join(cells[:10]))}{more}: {why}.")
    notes += _outputs_notes(counts)
    notes += _cap_bytes(nb, max_bytes)
    return notes


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cap_cells(nb, max_cells: int) -> list[str]:
    if len(nb.cells) <= max_cells:
        return []
    extra = len(nb.cells) - max_cells
    drop = set()
    for i in range(len(nb.cells) - 1, -1, -1):          # the last ungraded cells go first; graded cells stay
        if len(drop) == extra:
            break
        if not _graded(nb.cells[i]):
            drop.add(i)
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in drop]
    return [f"The notebook had more than {max_cells:,} cells; its last {len(drop):,} cells without grading "
            "metadata were removed."]


def _amount(n: int) -> str:
    return f"{n / 2**20:g} MB" if n >= 2**20 else f"{n / 1000:g} kB"


def _cap_bytes(nb, max_bytes: int) -> list[str]:
    sizes = [_size(c) for c in nb.cells]
    total = sum(sizes)
    if total <= max_bytes:
        return []
    notes = []
    cleared = 0
    for i in sorted(range(len(nb.cells)), key=lambda i: -sizes[i]):      # the largest outputs go first
        if total <= max_bytes:
            break
        cell = nb.cells[i]
        if cell.get("outputs"):
            before = sizes[i]
            cell["outputs"] = []
            sizes[i] = _size(cell)
            total -= before - sizes[i]
            cleared += 1
    if cleared:
        notes.append(f"The notebook was larger than {_amount(max_bytes)}; the stored outputs of its "
                     f"{cleared} largest cell(s) were removed.")
    removed = 0
    for i in range(len(nb.cells) - 1, -1, -1):
        if total <= max_bytes:
            break
        if not _graded(nb.cells[i]):
            total -= sizes[i]
            del nb.cells[i]
            removed += 1
    if removed:
        notes.append(f"The notebook was still larger than {_amount(max_bytes)}; its last {removed} cell(s) "
                     "without grading metadata were removed.")
    return notes


# ---------------------------------------------------------------- strings a student chose
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$^:])")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INVISIBLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")   # controls, format (bidi, zero-width), surrogates, unassigned


def terminal_safe(text, keep: str = "") -> str:
    """A string a student chose, safe to print to a terminal, to write into a note or a CSV: control characters
    (C0, C1, DEL), format characters (bidi overrides, zero-width), line and paragraph separators, surrogates and
    unassigned code points written as ``\\xNN`` / ``\\uNNNN`` / ``\\UNNNNNNNN`` escapes, except those in ``keep``
    (a CSV's comment keeps its new lines).  The course's one escape: collect, Gradescope, grades and notes use it."""
    out = []
    for ch in str(text):
        if ch not in keep and unicodedata.category(ch) in _INVISIBLE:
            o = ord(ch)
            out.append(_SHORT.get(ch) or f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(ch)
    return "".join(out)


def escape_note(text) -> str:
    """``text`` inert in Markdown and in HTML: control characters as escapes, HTML's special characters as
    entities, Markdown's punctuation backslash-escaped.  Rendered, it reads as the original text."""
    return html.escape(_MARKDOWN.sub(r"\\\1", terminal_safe(text)), quote=True)


class SafeOutputs(Preprocessor):
    """Autograde's step after the notebook ran and was judged: the outputs the student's code made while grading
    reduced to safe types (:func:`reduce_outputs`), so the formgrader and the feedback show them as text; what was
    removed goes into the notebook's notes.  Enabled by default (nbconvert's preprocessors are not, and nbgrader
    calls each one through ``__call__``, which skips a disabled one)."""

    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        from .notebook_run import run_record
        run_record(resources).notes += reduce_outputs(nb, ran=True)
        return nb, resources
