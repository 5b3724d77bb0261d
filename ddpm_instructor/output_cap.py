"""Cap a cell's outputs while they stream in, so a submission printing gigabytes never fills the grader's memory,
the gradebook or the feedback.

``GuardedExecute`` hands every output nbclient appends to ``OutputCap.take`` at once (nbgrader's ``LimitOutput``,
later in the pipeline, only trims what was kept): text beyond ``max_output_chars`` per cell is cut, any other
output that would bring the cell past ``max_output_bytes`` is dropped, error outputs are always kept, and a cell
that lost output gets one line saying so.

    cap = OutputCap(parent=executor)     # config: c.OutputCap.max_output_chars, c.OutputCap.max_output_bytes
    cap.reset()                          # a new notebook
    cap.start_cell(index)                # before a cell runs
    cap.take(outs, index)                # outs[-1] just arrived
    cap.was_cut(index)                   # did this cell lose output?
"""
from __future__ import annotations

import json

from nbformat.v4 import new_output
from traitlets import Integer
from traitlets.config import LoggingConfigurable

__all__ = ["OutputCap"]


def output_size(out) -> int:
    """Characters of a stream, of an error's traceback and value, of every entry of displayed data."""
    if out.get("output_type") == "stream":
        return len(out.get("text", ""))
    if out.get("output_type") == "error":
        return sum(len(x) for x in out.get("traceback", [])) + len(out.get("evalue", ""))
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in out.get("data", {}).values())


class OutputCap(LoggingConfigurable):
    """Keeps, shortens or drops each output of a cell as it arrives (see the module docstring)."""

    max_output_chars = Integer(20_000, help="Text output kept per cell; the rest is cut.").tag(config=True)
    max_output_bytes = Integer(2_000_000, help="All outputs (images included) kept per cell.").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.reset()

    def reset(self) -> None:
        self._used: dict[int, int] = {}
        self._cut: set[int] = set()

    def start_cell(self, index: int) -> None:
        self._used[index] = 0

    def was_cut(self, index: int) -> bool:
        return index in self._cut

    def take(self, outs: list, index: int) -> None:
        """``outs[-1]`` has just been appended to cell ``index``'s outputs: keep it, shorten it, or drop it."""
        out = outs[-1]
        used = self._used.get(index, 0)
        size = output_size(out)
        is_text = out.get("output_type") == "stream"
        text_used = sum(len(o.get("text", "")) for o in outs[:-1] if o.get("output_type") == "stream")
        if is_text and text_used + size > self.max_output_chars:
            keep = max(0, self.max_output_chars - text_used)
            outs.pop()
            if keep:
                out["text"] = out["text"][:keep]
                outs.append(out)
            self._mark_cut(outs, index)
        elif not is_text and out.get("output_type") != "error" and used + size > self.max_output_bytes:
            outs.pop()
            self._mark_cut(outs, index)
        else:
            self._used[index] = used + size

    def _mark_cut(self, outs: list, index: int) -> None:
        if index not in self._cut:
            self._cut.add(index)
            outs.append(new_output("stream", name="stderr",
                                   text=f"\n[grader: output cut here; at most {self.max_output_chars:,} characters "
                                        "of text per cell are kept]\n"))
