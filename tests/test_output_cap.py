"""ddpm_instructor.output_cap: a cell's outputs capped as they arrive (text cut, large data dropped, errors kept)."""
from __future__ import annotations

from nbformat.v4 import new_output
from traitlets.config import Config

from ddpm_instructor.output_cap import OutputCap, output_size

MARK = "[grader: output cut here"


def feed(cap: OutputCap, outputs, index: int = 0) -> list:
    """What a cell keeps when ``outputs`` arrive one by one, as nbclient appends them."""
    outs: list = []
    cap.start_cell(index)
    for out in outputs:
        outs.append(out)
        cap.take(outs, index)
    return outs


def text(n: int, ch: str = "x"):
    return new_output("stream", name="stdout", text=ch * n)


def image(n: int):
    return new_output("display_data", data={"image/png": "A" * n})


def test_text_is_cut_at_the_limit_and_the_cell_says_so_once():
    cap = OutputCap(max_output_chars=100)
    outs = feed(cap, [text(60, "a"), text(60, "b"), text(60, "c")])
    kept = "".join(o.text for o in outs if o.name == "stdout")
    assert kept == "a" * 60 + "b" * 40
    assert sum(MARK in o.text for o in outs) == 1 and "100 characters" in outs[-1].text
    assert cap.was_cut(0) and not cap.was_cut(1)


def test_what_fits_is_kept_untouched():
    cap = OutputCap(max_output_chars=100, max_output_bytes=1000)
    sent = [text(50), image(500), text(50)]
    outs = feed(cap, [dict(o) for o in sent])
    assert outs == sent and not cap.was_cut(0)


def test_data_past_the_byte_limit_is_dropped_but_errors_are_always_kept():
    cap = OutputCap(max_output_bytes=1000)
    err = new_output("error", ename="E", evalue="v" * 5000, traceback=["t" * 5000])
    outs = feed(cap, [image(800), image(800), err, image(10)])
    assert [o.output_type for o in outs] == ["display_data", "stream", "error"]       # the error counts too
    assert MARK in outs[1].text and cap.was_cut(0)


def test_each_cell_has_its_own_budget_and_reset_forgets_the_last_notebook():
    cap = OutputCap(max_output_bytes=1000)
    feed(cap, [image(900)], index=0)
    assert feed(cap, [image(900)], index=1) == [image(900)]
    feed(cap, [image(900), image(900)], index=2)
    assert cap.was_cut(2)
    cap.reset()
    assert not cap.was_cut(2)


def test_the_limits_are_configurable_traits():
    cap = OutputCap(config=Config({"OutputCap": {"max_output_chars": 7, "max_output_bytes": 9}}))
    assert (cap.max_output_chars, cap.max_output_bytes) == (7, 9)
    assert "".join(o.text for o in feed(cap, [text(20)]) if o.name == "stdout") == "x" * 7


def test_output_size_counts_every_kind():
    assert output_size(text(5)) == 5
    assert output_size(new_output("error", ename="E", evalue="abc", traceback=["12", "345"])) == 8
    assert output_size(new_output("display_data", data={"text/plain": "abcd", "application/json": {"a": 1}})) == 12
