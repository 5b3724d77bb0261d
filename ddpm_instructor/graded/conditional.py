"""Notebook 6: inputs and expected values of ``UNet_cond``'s three blanks."""
from __future__ import annotations

import torch

import solutions
from tutorial_utils.checks import conditional as checks

from .case import CheckData, Graded, images


TABLE_WIDTH = 384      # wider than any class embedding tested: the inputs do not say how wide it should be


def inputs_class_emb(seed: int, ch: int, n_classes: int) -> dict:
    """The labels, and a table of weights (one row per class) whose first columns the probe copies into the
    student's embedding, however wide it is."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.randperm(n_classes, generator=g), torch.randint(0, n_classes, (3,), generator=g)])
    return {"ch": ch, "n_classes": n_classes, "y": y, "table": torch.randn(n_classes, TABLE_WIDTH, generator=g)}


def expected_class_emb(inputs) -> dict:
    emb = solutions.UNet_cond(ch=inputs["ch"], n_classes=inputs["n_classes"]).class_emb
    cols = emb.embedding_dim
    lookup = torch.zeros(len(inputs["y"]), inputs["table"].shape[1])
    lookup[:, :cols] = inputs["table"][inputs["y"], :cols]
    return {"shape": [emb.num_embeddings, cols], "lookup": lookup}


def inputs_cond(seed: int, ch: int = 8, n_classes: int = 10, B: int = 4) -> dict:
    torch.manual_seed(seed)
    ref = solutions.UNet_cond(ch=ch, n_classes=n_classes)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():                       # trained-looking weights, not the init: every class differs, and no
        ref.class_emb.weight.normal_(0, 1)      # weight (the norms' ones and zeros) is the same for two seeds
        for p in ref.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return {"ch": ch, "n_classes": n_classes, "state_dict": {k: v.clone() for k, v in ref.state_dict().items()},
            "x": images(g, B), "t": torch.randint(0, 1000, (B,), generator=g),
            "y": torch.randint(0, n_classes, (B,), generator=g)}


def expected_cond(inputs) -> dict:
    ref = solutions.UNet_cond(ch=inputs["ch"], n_classes=inputs["n_classes"])
    ref.load_state_dict(inputs["state_dict"])
    ref.eval()
    with torch.no_grad():
        t_emb, y_emb = ref.time_mlp(inputs["t"]), ref.class_emb(inputs["y"])
        return {"y_emb": y_emb, "cond_emb": t_emb + y_emb, "out": ref(inputs["x"], inputs["t"], inputs["y"])}


def operands_class_emb(inputs, exp):
    """The embedding's size and the labels; the answer: the rows of the table the labels pick (as wide as the
    reference's embedding)."""
    cols = int(exp["shape"][1])
    return [({"ch": inputs["ch"], "n_classes": inputs["n_classes"], "y": inputs["y"], "table": inputs["table"],
              "weight": inputs["table"]}, {"lookup": inputs["table"][inputs["y"], :cols]})]


def operands_cond(key: str):
    def operands(inputs, exp):
        sd = inputs["state_dict"]
        return [({"ch": inputs["ch"], "n_classes": inputs["n_classes"], "x": inputs["x"], "t": inputs["t"],
                  "y": inputs["y"], "state_dict": sd, "weight": sd["class_emb.weight"]}, {key: exp[key]})]
    return operands


TESTS = (
    Graded("test_UNet_cond_class_emb", checks.CLASS_EMB, lambda: inputs_class_emb(76, 16, 7), expected_class_emb,
           operands_class_emb),
    Graded("test_UNet_cond_y_emb", checks.COND_Y_EMB, lambda: inputs_cond(77), expected_cond, operands_cond("y_emb")),
    Graded("test_UNet_cond_cond_emb", checks.COND_COND_EMB, lambda: inputs_cond(78), expected_cond,
           operands_cond("cond_emb")),
)

SELF_CHECKS = (
    CheckData(checks.CLASS_EMB_CHECK, lambda: inputs_class_emb(0, 8, 10), expected_class_emb),
    CheckData(checks.COND_FORWARD_CHECK, lambda: inputs_cond(0), expected_cond),
)
