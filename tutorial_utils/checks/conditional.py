"""Notebook 6 (class-conditional DDPM): the three blanks of ``UNet_cond`` -- their probes, records and judges."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from .core import ABSENT, FILL_IN, Num, Obs, Record, Text, capture_locals, close, code_of, err_text, expect, fail, \
    fresh, local


from .blank import Blank, SelfCheck
@dataclass
class ClassEmbRecord(Record):
    """``cls(ch, n_classes)``: what ``self.class_emb`` is and, when it is an ``nn.Embedding`` with one row per class,
    its lookup of the grader's labels ``y`` once it holds the first columns of the grader's ``table``.  The table is
    wider than any embedding (``inputs["table"]``: n_classes x a few hundred), so nothing the kernel can read before
    the call says how wide the embedding should be; the lookup is recorded padded with zeros to the table's width."""
    kind = "class_emb"
    error: str
    type: str
    rows: int
    cols: int
    lookup: object

    @staticmethod
    def spec(inputs):
        return {"error": Text(), "type": Text(80), "rows": Num(int), "cols": Num(int),
                "lookup": Obs((len(inputs["y"]), int(inputs["table"].shape[1])))}

    @classmethod
    def probe(cls, model_cls, inputs):
        try:
            model = model_cls(ch=int(inputs["ch"]), n_classes=int(inputs["n_classes"]))
        except Exception as e:
            return cls(err_text(e), "", -1, -1, ABSENT)
        emb = getattr(model, "class_emb", None)
        if not isinstance(emb, nn.Embedding):
            return cls("", type(emb).__name__[:80], -1, -1, ABSENT)
        rows, cols, lookup = int(emb.num_embeddings), int(emb.embedding_dim), ABSENT
        table = inputs["table"]
        if rows == table.shape[0] and 0 < cols <= table.shape[1]:
            with torch.no_grad():
                emb.weight.copy_(table[:, :cols])
                try:
                    got = emb(fresh(inputs["y"]))
                except Exception as e:
                    return cls(err_text(e), type(emb).__name__[:80], rows, cols, ABSENT)
                lookup = torch.zeros(len(inputs["y"]), table.shape[1], dtype=got.dtype) if got.ndim == 2 else got
                if got.ndim == 2 and got.shape[1] == cols:
                    lookup[:, :cols] = got
                else:
                    lookup = got
        return cls("", type(emb).__name__[:80], rows, cols, lookup)


def judge_class_emb(rec: ClassEmbRecord, inputs: dict, exp: dict) -> str:
    n, ch = int(inputs["n_classes"]), int(inputs["ch"])
    want = [int(v) for v in exp["shape"]]
    if rec.error:
        fail(f"UNet_cond(ch={ch}, n_classes={n}) raised {rec.error}.")
    if rec.type == "NoneType":
        fail("self.class_emb is still None \u2014 " + FILL_IN + " (`self.class_emb = None`): a learned lookup "
             "table with one vector per class, as long as the time embedding (hint: nn.Embedding).")
    if rec.rows < 0:
        fail(f"self.class_emb should be an nn.Embedding, not {rec.type}.")
    if [rec.rows, rec.cols] != want:
        fail(f"wrong shape: self.class_emb is nn.Embedding({rec.rows}, {rec.cols}); it needs "
             f"n_classes = {want[0]} rows of the time embedding's size {want[1]}.")
    lookup = expect(rec.lookup, "self.class_emb(y)", none="self.class_emb(y) returned None.")
    if not close(lookup, exp["lookup"]):
        fail("self.class_emb(y) does not return the rows of its weight for the labels y: use nn.Embedding itself.")
    return (f"class_emb = nn.Embedding({want[0]}, {want[1]}) for UNet_cond(ch={ch}, n_classes={n}): one learned "
            f"vector per class, as long as its time embedding (4 ch).")


_COND_LOCALS = ("y_emb", "cond_emb")


@dataclass
class CondRecord(Record):
    """``cls(ch, n_classes)`` loaded with the grader's weights, run on (x, t, y): its named locals and output.
    If ``self.class_emb`` is not an ``nn.Embedding`` of the right size it is replaced first, so that the forward
    blanks are judged on their own."""
    kind = "cond_forward"
    error: str
    load_error: str
    out: object
    y_emb: object
    cond_emb: object

    @staticmethod
    def spec(inputs):
        emb = (len(inputs["y"]), int(inputs["state_dict"]["class_emb.weight"].shape[1]))
        return {"error": Text(), "load_error": Text(), "out": Obs(tuple(inputs["x"].shape)), "y_emb": Obs(emb),
                "cond_emb": Obs(emb)}

    @classmethod
    def probe(cls, model_cls, inputs):
        try:
            model = model_cls(ch=int(inputs["ch"]), n_classes=int(inputs["n_classes"]))
        except Exception as e:
            return cls(err_text(e), "", ABSENT, ABSENT, ABSENT)
        state = inputs["state_dict"]
        want = tuple(state["class_emb.weight"].shape)
        emb = getattr(model, "class_emb", None)
        if not isinstance(emb, nn.Embedding) or tuple(emb.weight.shape) != want:
            model.class_emb = nn.Embedding(*want)
        try:
            model.load_state_dict(state)
            load_error = ""
        except Exception as e:
            load_error = err_text(e)
        model.eval()
        with torch.no_grad():
            out, loc, err = capture_locals(model.forward, fresh(inputs["x"]), fresh(inputs["t"]), fresh(inputs["y"]),
                                           names=_COND_LOCALS, code=code_of(type(model).forward))
        return cls(err_text(err), load_error, out, local(loc, "y_emb"), local(loc, "cond_emb"))


def judge_cond(part: str, rec: CondRecord, inputs: dict, exp: dict) -> str:
    """``y_emb`` or ``cond_emb`` (and the output) of ``UNet_cond.forward`` with the given weights."""
    if rec.load_error:
        fail(f"your UNet_cond's weights do not fit the course's UNet_cond: {rec.load_error}")
    out_ok = not rec.error and close(rec.out, exp["out"], atol=1e-4)
    if part == "y_emb":
        if rec.y_emb is ABSENT:
            if out_ok and close(rec.cond_emb, exp["cond_emb"]):
                return "y_emb is right (computed inline)."
        y_emb = expect(rec.y_emb, "y_emb", raised=rec.y_emb is ABSENT and rec.error
                       and f"UNet_cond.forward raised {rec.error} before it set y_emb.", shape_hint=" = (B, emb_dim)",
                       none="y_emb is still None \u2014 " + FILL_IN + " (`y_emb = None`): look up the embedding of the labels y.")
        if not close(y_emb, exp["y_emb"]):
            fail("y_emb is not self.class_emb(y): embed the class labels y (not t).")
        return f"y_emb = class_emb(y), shape {tuple(y_emb.shape)}."
    if rec.cond_emb is ABSENT and out_ok:
        return "cond_emb is right (computed inline), and so is the output."
    want = exp["cond_emb"]
    concat = (" Add them (as the time embedding is added inside every ConvBlock); don't concatenate."
              if getattr(rec.cond_emb, "shape", None) and tuple(rec.cond_emb.shape)[-1:] == (2 * want.shape[-1],) else "")
    cond = expect(rec.cond_emb, "cond_emb", raised=rec.cond_emb is ABSENT and rec.error
                  and f"UNet_cond.forward raised {rec.error} before it set cond_emb.", shape_hint=concat and "." + concat.rstrip("."),
                  none="cond_emb is still None \u2014 " + FILL_IN + " (`cond_emb = None`): combine the time embedding "
                       "and the class embedding into the one vector the backbone receives.")
    if not close(cond, want):
        fail("cond_emb is not t_emb + y_emb: the class embedding is added to the time embedding.")
    if rec.error:
        fail(f"UNet_cond.forward raised {rec.error}.")
    if not out_ok:
        fail("UNet_cond's output differs from the course's UNet_cond with the same weights: pass cond_emb to "
             "self.backbone so it reaches every stage.")
    return "cond_emb = t_emb + y_emb, and the output matches the course's UNet_cond with the same weights."


# =========================================================================== the blanks, declared once, and their self-checks
CLASS_EMB = Blank(ClassEmbRecord, judge_class_emb, "lookup", "UNet_cond: self.class_emb")
COND_Y_EMB = Blank(CondRecord, functools.partial(judge_cond, "y_emb"), "y_emb", "UNet_cond.forward: y_emb")
COND_COND_EMB = Blank(CondRecord, functools.partial(judge_cond, "cond_emb"), "cond_emb", "UNet_cond.forward: cond_emb")

CLASS_EMB_CHECK = SelfCheck("class_emb", (CLASS_EMB,))
COND_FORWARD_CHECK = SelfCheck("cond_forward", (COND_Y_EMB, COND_COND_EMB))
CHECKS = (CLASS_EMB_CHECK, COND_FORWARD_CHECK)


def check_unet_cond(cls, quiet: bool = False) -> None:
    """Self-check for the three blanks of ``UNet_cond``."""
    CLASS_EMB_CHECK.run(cls, quiet)
    COND_FORWARD_CHECK.run(cls, quiet)
