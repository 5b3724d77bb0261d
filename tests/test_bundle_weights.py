"""A bundle carries only the weights its notebook loads (ddpm_instructor.bundle.used_weights), read from the code."""
import re
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor.bundle import used_weights
from ddpm_instructor.errors import InstructorError

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "notebooks" / "release"


def _names(paths):
    return sorted(p.name for p in paths)


def test_each_released_notebook_gets_the_weights_its_code_loads():
    seen = {}
    for path in sorted(RELEASE.glob("*/*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        want = {f"{n}.{ext}" for n in re.findall(r"load_(?:mine_or_)?pretrained\(\s*[\"'](\w+)[\"']", code) for ext in ("pt", "json")}
        if re.search(r"^\s*(from tutorial_utils\.judge import|import tutorial_utils\.judge)", code, re.M):
            want |= {"mnist_classifier.pt", "mnist_classifier.json"}
        got = used_weights(nb, path.name)
        assert _names(got) == sorted(want), path.name
        assert all(p.is_file() and p.parent == ROOT / "checkpoints" for p in got), got
        seen[path.parent.name[:2]] = _names(got)
    assert seen["01"] == seen["02"] == seen["03"] == []                  # the first three load no weights
    # notebooks 4 and 5 fall back to the shipped unet_digit6 when your weights fail the sanity check, 6 to unet_cond
    assert {"unet_digit6.pt", "unet_digit6.json"} <= set(seen["04"]) and {"unet_digit6.pt"} <= set(seen["05"])
    assert {"unet_cond.pt", "unet_cond.json"} <= set(seen["06"])
    # notebook 8 draws with unet_flow (its few-step table, beside unet_cond) and one step of unet_flow_reflow
    assert {"unet_flow.pt", "unet_flow_reflow.pt", "unet_flow_reflow.json"} <= set(seen["08"]), seen["08"]
    assert seen["07"] == ["mnist_classifier.json", "mnist_classifier.pt", "unet_cond.json", "unet_cond.pt",
                          "unet_digit6.json", "unet_digit6.pt"], seen["07"]


def test_a_checkpoint_name_the_bundle_cannot_read_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("name = 'unet_digit6'\nm = load_pretrained(name)")])
    with pytest.raises(InstructorError, match=r"load_pretrained\(name\.\.\.\) does not name a shipped checkpoint"):
        used_weights(nb, "x.ipynb")
    nb.cells[0].source = "m = load_pretrained('unet_big')"
    with pytest.raises(InstructorError, match="unet_cond, unet_digit6"):
        used_weights(nb, "x.ipynb")
