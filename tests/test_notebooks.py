"""The seven source notebooks: structure, nbgrader metadata, stored outputs, nbval set-up, and the self-checks'
messages on typical mistakes.

Executing the source notebooks is nbval's job (pyproject.toml adds ``notebooks/source`` with ``--nbval``):
they run once per test session, every self-check and hidden test in them must pass, and the cells with
deterministic output are compared with the stored output.
"""
from __future__ import annotations

import base64
import importlib.util
import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions
from tutorial_utils import checks
from tutorial_utils.checks import SelfCheckError
from ddpm_instructor.graded import run_in_process

# the graded tests, run the way the source notebooks run them (probe + judge in this process)
GRADE = {gid: (lambda obj, gid=gid: run_in_process(gid, obj)) for gid in [
    'test_q_sample_sqrt_alpha_bar', 'test_q_sample_sqrt_one_minus_alpha_bar', 'test_q_sample_return', 'test_train_x_t', 'test_train_pred_noise', 'test_train_loss', 'test_p_sample_DDPM', 'test_UNet_cond_class_emb', 'test_UNet_cond_y_emb', 'test_UNet_cond_cond_emb', 'test_loss_fn', 'test_linear_beta_schedule']}

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# The seven lessons: assignment folder -> notebook (nbgrader's course layout; notebooks/ is the course root).
LESSONS = {
    "01_forward_1d": "01_forward_diffusion_1d.ipynb",
    "02_forward_closed_form": "02_forward_closed_form.ipynb",
    "03_unet": "03_unet_time_embedding.ipynb",
    "04_training": "04_training_algorithm1.ipynb",
    "05_sampling": "05_sampling_algorithm2.ipynb",
    "06_conditional": "06_class_conditional.ipynb",
    "07_beyond": "07_beyond_ddpm.ipynb",
    "08_flow_matching": "08_flow_matching.ipynb",
    "09_applications": "09_what_a_model_can_do.ipynb",
}
POINTS = {"01_forward_1d": 5, "02_forward_closed_form": 10, "03_unet": 0, "04_training": 10,
          "05_sampling": 5, "06_conditional": 9, "07_beyond": 12,
          "08_flow_matching": 19, "09_applications": 8}
# The written answers, graded by hand in the formgrader: points of each question's answer cell, in order.
WRITTEN = {"01_forward_1d": [1, 1, 1], "02_forward_closed_form": [2], "03_unet": [1, 2, 1], "04_training": [],
           "05_sampling": [1, 1], "06_conditional": [1, 1, 2], "07_beyond": [1, 1, 2],
           "08_flow_matching": [1, 1], "09_applications": [1, 1]}


def source_path(assignment):
    return NOTEBOOKS / "source" / assignment / LESSONS[assignment]


def _read(assignment):
    return nbformat.read(source_path(assignment), as_version=4)


def _nbg(cell):
    return cell.metadata.get("nbgrader", {})


def _is_answer(cell):
    """Notes on an optional exercise: an ungraded nbgrader solution cell (code, comments only)."""
    return _nbg(cell).get("grade_id", "").startswith("answer_")


def _is_written(cell):
    """A written answer to a "check your understanding" question: a manually graded Markdown answer cell."""
    return _nbg(cell).get("grade_id", "").startswith("written_")


def _budget():
    """The size budget of the stored outputs, as tools/notebook_outputs.py enforces it when it stores them."""
    spec = importlib.util.spec_from_file_location("notebook_outputs", ROOT / "tools" / "notebook_outputs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _md(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _code(nb):
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


# ----------------------------------------------------------------------------- structure and metadata
def test_the_seven_lessons_are_there_in_nbgraders_layout():
    found = sorted(p.relative_to(NOTEBOOKS / "source").as_posix() for p in (NOTEBOOKS / "source").glob("*/*.ipynb"))
    assert found == sorted(f"{a}/{n}" for a, n in LESSONS.items())


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_nbgrader_metadata_is_complete_and_points_match_the_readme(assignment):
    nb = _read(assignment)
    nbformat.validate(nb)
    ids = [_nbg(c)["grade_id"] for c in nb.cells if _nbg(c)]
    assert len(ids) == len(set(ids)), "grade ids must be unique"
    for c in nb.cells:
        m = _nbg(c)
        if m:
            assert m["schema_version"] == 3 and c["id"] == m["grade_id"]
            assert c.cell_type == ("markdown" if _is_written(c) else "code")
            if _is_written(c):
                assert m["grade"] and m["solution"] and not m["locked"] and m["points"] > 0
            elif m.get("grade"):
                assert m["points"] > 0 and m["locked"] and m["grade_id"].startswith("test_")
                assert "### BEGIN HIDDEN TESTS" in c.source
    points = sum(_nbg(c).get("points", 0) for c in nb.cells if _nbg(c).get("grade") and not _is_written(c))
    assert points == POINTS[assignment]
    written = [_nbg(c)["points"] for c in nb.cells if _is_written(c)]
    assert written == WRITTEN[assignment]
    readme = (NOTEBOOKS / "README.md").read_text()
    m = re.search(rf"^\|\s*`?{assignment}`?.*\|\s*\*\*(\d+)\*\*\s*\|[^|]*\|\s*(\d+)\s*\|\s*\*\*(\d+)\*\*\s*\|\s*$",
                  readme, re.M)
    assert m and [int(g) for g in m.groups()] == [points, sum(written), points + sum(written)], \
        f"notebooks/README.md's point table (autograded, written, total) disagrees for {assignment}"


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_each_blank_is_followed_by_its_self_check_then_its_graded_tests(assignment):
    cells = _read(assignment).cells
    for i, c in enumerate(cells):
        if not _nbg(c).get("solution") or _is_answer(c) or _is_written(c):
            continue
        n_blanks = c.source.count("BEGIN SOLUTION")
        check = cells[i + 1]
        assert _nbg(check).get("locked") and _nbg(check)["grade_id"].startswith("check_"), \
            f"the cell after {_nbg(c)['grade_id']} must be its self-check"
        assert "from tutorial_utils.checks import check_" in check.source
        tests = []
        for nxt in cells[i + 2:]:
            if not _nbg(nxt).get("grade"):
                break
            tests.append(nxt)
        assert len(tests) == n_blanks, f"{_nbg(c)['grade_id']}: one graded test per blank"


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_each_question_has_a_written_answer_cell_with_a_model_answer_and_a_rubric(assignment):
    """After each block of "Check your understanding" / "Try it yourself" questions: one manually graded Markdown
    answer cell per question (a heading the student keeps, the model answer and rubric inside the solution region,
    which nbgrader blanks), then, in notebook 7, the ungraded notes cell of the optional exercise."""
    cells = _read(assignment).cells
    questions = [i for i, c in enumerate(cells) if c.cell_type == "markdown"
                 and ("Check your understanding" in c.source or "Try it yourself" in c.source)]
    assert questions or assignment == "04_training", f"{assignment} lost its questions"
    assert len(questions) <= 1
    written = [i for i, c in enumerate(cells) if _is_written(c)]
    assert len(written) == len(WRITTEN[assignment])
    if questions:
        q = questions[0]
        assert written == list(range(written[0], written[0] + len(written))) and q < written[0], \
            "the answers follow their questions, one after the other"
        assert all(cells[k].cell_type == "markdown" or "experiments" in cells[k].source for k in range(q + 1, written[0]))
    for i in written:
        lines = cells[i].source.split("\n")
        assert lines[0].startswith("**Your answer") and f"({_nbg(cells[i])['points']} point" in lines[0]
        assert lines[2] == "### BEGIN SOLUTION" and lines[-1] == "### END SOLUTION"
        inside = "\n".join(lines[3:-1])
        assert inside.startswith("**Model answer.**") and f"**Rubric ({_nbg(cells[i])['points']} point" in inside
    notes = [i for i, c in enumerate(cells) if _is_answer(c)]
    assert len(notes) == (1 if assignment == "07_beyond" else 0)
    for i in notes:
        from ddpm_instructor.blanks import blank_stub
        c, m = cells[i], _nbg(cells[i])
        assert i == written[-1] + 1 and "Exercise (optional" in cells[questions[0]].source
        assert c.cell_type == "code" and m == {"grade": False, "grade_id": c["id"], "locked": False,
                                               "schema_version": 3, "solution": True}
        lines = c.source.split("\n")
        assert blank_stub(lines[0]) == "# Your notes on the optional exercise (not graded): write them here."
        assert lines[-1] == "### END SOLUTION" and len(lines) > 2
        assert all(line.startswith("#") for line in lines), "notes are comments: the cell must run as it is"
        assert not c.get("outputs")


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_stored_outputs_stay_within_the_size_budget(assignment):
    budget = _budget()
    path = source_path(assignment)
    assert path.stat().st_size <= budget.NOTEBOOK_CAP, \
        f"{path.name} is {path.stat().st_size} bytes, over {budget.NOTEBOOK_CAP}: shrink or drop figures"
    nb = _read(assignment)
    assert "widgets" not in nb.metadata, "widget state (tqdm bars) must not be stored"
    for c in nb.cells:
        for out in c.get("outputs", []):
            assert out.output_type != "error"
            data = out.get("data", {})
            assert set(data) <= set(budget.KEEP_MIME), f"{c['id']}: unexpected output types {sorted(data)}"
            if "image/png" in data:
                size = len(base64.b64decode(data["image/png"]))
                assert size <= budget.PNG_CAP, f"{c['id']}: a stored PNG of {size} bytes (cap {budget.PNG_CAP})"
                assert "text/plain" in data, "keep the figure's text too (nbval compares it, not the image)"


def test_all_source_notebooks_together_stay_within_the_budget():
    budget = _budget()
    total = sum(source_path(a).stat().st_size for a in LESSONS)
    assert total <= budget.TOTAL_CAP, f"the source notebooks hold {total} bytes (budget {budget.TOTAL_CAP})"
    readme = (NOTEBOOKS / "README.md").read_text()
    for stated in [f"{budget.PNG_CAP // 1000} KB per figure", f"{budget.NOTEBOOK_CAP // 1000} KB per notebook",
                   f"{budget.TOTAL_CAP / 1e6:g} MB for all nine"]:
        assert stated in readme, f"notebooks/README.md must state the budget ({stated!r})"


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_each_source_notebook_shows_its_figures(assignment):
    """The source notebooks read on the web before anyone runs them: at least one figure stored."""
    nb = _read(assignment)
    pngs = [c["id"] for c in nb.cells for out in c.get("outputs", []) if "image/png" in out.get("data", {})]
    assert pngs, f"{assignment} stores no figure: run tools/notebook_outputs.py on it"


def test_nbval_never_compares_the_stored_images():
    """nbval compares image/png only with --nbdime; the stored PNGs must never be able to fail the suite."""
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--nbdime" not in ini["addopts"]


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_outputs_are_compared_cell_by_cell_not_blanket_ignored(assignment):
    nb = _read(assignment)
    assert "nbval" not in nb.metadata
    code = [c for c in nb.cells if c.cell_type == "code"]
    ignored = [c for c in code if "nbval-ignore-output" in c.metadata.get("tags", [])]
    assert not any("NBVAL_" in c.source for c in code), "nbval markers go in the cell tags, not in what students read"
    assert not any("nbval-skip" in c.metadata.get("tags", []) for c in code)
    compared_with_output = [c for c in code if c not in ignored and c.outputs]
    assert len(compared_with_output) >= 4, "compare the deterministic cells (schedule values, shapes, checks)"
    for c in ignored:  # output that varies (timings, samples): stored to be read, not compared; no progress bars
        assert not any(o.get("name") == "stderr" or "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                       for o in c.outputs), c.get("id")


@pytest.mark.parametrize("assignment", sorted(LESSONS))
def test_no_cell_relies_on_a_trailing_semicolon(assignment):
    # nbval runs cells without storing history, so IPython does not see a final `;` and displays the value
    # (a figure twice, say).  Assign the result instead: `fig = plot_...(...)`.
    for c in _read(assignment).cells:
        if c.cell_type == "code" and c.source.strip():
            assert not c.source.rstrip().endswith(";"), c.source


def test_the_mathematics_is_written_out():
    nb2 = _md(_read("02_forward_closed_form"))
    heading = next(line for line in nb2.splitlines() if line.startswith("# "))
    assert r"q(\mathbf{x}_t \mid \mathbf{x}_0)" in heading
    assert r"\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1-\bar\alpha_t}" in nb2
    nb4, nb5 = _md(_read("04_training")), _md(_read("05_sampling"))
    assert "Algorithm 1" in nb4 and r"\nabla_\theta" in nb4 and r"\mathrm{Uniform}" in nb4
    assert "Algorithm 2" in nb5 and r"\mathbf{x}_{t-1} = \frac{1}{\sqrt{\alpha_t}}" in nb5
    assert "x_t = \\sqrt{1-\\beta}" in _md(_read("01_forward_1d"))
    # notebook 2 derives the closed form (independent Gaussians, two steps, induction)
    assert "*independent* Gaussians" in nb2 and "**Induction.**" in nb2 and "**Step 2.**" in nb2
    # notebook 5: the posterior (eqs. 6-7), the ELBO down to L_simple, and the two choices of sigma_t^2
    for piece in [r"q(\mathbf{x}_{t-1} \mid \mathbf{x}_t, \mathbf{x}_0)", r"\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t",
                  r"L_{\text{simple}}", r"\sigma_t^2 = \tilde\beta_t"]:
        assert piece in nb5, piece


def test_the_text_states_what_the_code_does():
    """Placeholders filled in; the profiles' training lengths and the recipe said as they are."""
    from tutorial_utils import PROFILES

    for assignment in LESSONS:
        text = _md(_read(assignment)) + _code(_read(assignment))
        assert "TIMING_" not in text and "RESULT_" not in text, f"{assignment}: a placeholder was left"
        assert "LAPTOP6" not in text and "LAPTOPC" not in text, f"{assignment}: a placeholder was left"
    for assignment in ["04_training", "06_conditional"]:
        assert "a few dozen" not in _md(_read(assignment)), f"{assignment}: the smoke profile runs 20 steps; say so"
    laptop = PROFILES["laptop"]
    nb4, nb6 = _md(_read("04_training")), _md(_read("06_conditional"))
    assert f"| {laptop.recipe_digit6.steps:,} steps of {laptop.recipe_digit6.batch_size} sixes |" in nb4
    assert f"`laptop` {laptop.recipe_cond.steps:,} steps of {laptop.recipe_cond.batch_size}" in nb6
    for piece in ["AdamW", "LinearLR", "CosineAnnealingLR", "SequentialLR", "AveragedModel", "torch.autocast"]:
        assert piece in nb4, piece
    code4 = _code(_read("04_training"))
    assert "recipe.scheduler(optimizer)" in code4 and "recipe.ema_model(model)" in code4
    assert "load_mine_or_pretrained" in _code(_read("05_sampling")) and "p_uncond=recipe.p_uncond" in _code(_read("06_conditional"))
    assert "benchmarks/RESULTS.md" in nb6


def test_notebooks_import_helpers_instead_of_copying_them():
    for assignment in LESSONS:
        code = _code(_read(assignment))
        for helper in ["def extract", "def forward_diffuse_1d", "class Unet", "class ConvBlock",
                       "class SinusoidalPositionEmbeddings", "def p_sample_loop_cDDPM", "def plot_"]:
            assert helper not in code, f"{assignment} copies {helper}; import it from solutions/tutorial_utils"
    assert "from solutions import extract" in _code(_read("02_forward_closed_form"))
    assert "from solutions import Unet, q_sample" in _code(_read("04_training"))
    assert "class UNet_cond(Unet):" in _code(_read("06_conditional"))
    for assignment in ["04_training", "05_sampling", "06_conditional", "07_beyond"]:
        code = _code(_read(assignment))        # your weights if they pass the sanity check, else the shipped ones
        assert "load_mine_or_pretrained(" in code and "except ImportError" not in code


def test_pytest_runs_the_notebooks_with_nbval():
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "notebooks/source" in ini["testpaths"]
    for opt in ["--nbval", "--nbval-current-env", "--nbval-sanitize-with"]:
        assert opt in ini["addopts"]
    sanitize = ini["addopts"].split("--nbval-sanitize-with")[1].split()[0]
    assert (ROOT / sanitize).is_file()


# ----------------------------------------------------------------------------- the self-checks' messages
def _raises(fn, *args, match):
    with pytest.raises(SelfCheckError, match=match):
        fn(*args, quiet=True)


def test_schedule_checks_name_the_mistake():
    _raises(checks.check_linear_beta_schedule, lambda T, b0=1e-4, b1=0.02: None, match="returned None")
    _raises(checks.check_linear_beta_schedule, lambda T, b0=1e-4, b1=0.02: torch.linspace(b0, b1, T + 1),
            match="wrong shape")
    _raises(checks.check_linear_beta_schedule, lambda T, b0=1e-4, b1=0.02: torch.linspace(b0, b1, T + 1)[:-1],
            match="wrong endpoint")
    _raises(checks.check_linear_beta_schedule, lambda T, b0=1e-4, b1=0.02: torch.linspace(1e-4, 0.02, T),
            match="use the arguments")
    checks.check_linear_beta_schedule(solutions.linear_beta_schedule, quiet=True)


def _q_sample_factory(bad):
    ab = solutions.default_schedule().alpha_bars

    def q_sample(x_start, t, noise=None):
        noise = torch.randn_like(x_start) if noise is None else noise
        sqrt_alpha_bar = solutions.extract(ab if bad == "no_sqrt" else ab.sqrt(), t, x_start.shape)
        sqrt_one_minus_alpha_bar = solutions.extract((1 - ab).sqrt(), t, x_start.shape)
        if bad == "flat":
            sqrt_alpha_bar = ab.sqrt()[t]
        if bad == "none_return":
            return None
        if bad == "variance":
            return sqrt_alpha_bar * x_start + (1 - ab[t]).view(-1, 1, 1, 1) * noise
        return sqrt_alpha_bar * x_start + sqrt_one_minus_alpha_bar * noise
    return q_sample


def test_q_sample_checks_name_the_mistake():
    _raises(checks.check_q_sample, _q_sample_factory("no_sqrt"), match="without the square root")
    _raises(checks.check_q_sample, _q_sample_factory("flat"), match="wrong shape: sqrt_alpha_bar")
    _raises(checks.check_q_sample, _q_sample_factory("none_return"), match="returned None")
    _raises(checks.check_q_sample, _q_sample_factory("variance"), match=r"variance .*off by")
    checks.check_q_sample(_q_sample_factory(None), quiet=True)
    for grade in [GRADE['test_q_sample_sqrt_alpha_bar'], GRADE['test_q_sample_sqrt_one_minus_alpha_bar'],
                  GRADE['test_q_sample_return']]:
        grade(_q_sample_factory(None))
    GRADE['test_q_sample_sqrt_alpha_bar'](_q_sample_factory("variance"))      # partial credit is per blank
    with pytest.raises(SelfCheckError):
        GRADE['test_q_sample_return'](_q_sample_factory("variance"))


def test_loss_checks_name_the_mistake():
    _raises(checks.check_loss_fn, None, match="loss_fn is None")
    _raises(checks.check_loss_fn, nn.MSELoss(reduction="sum"), match="sum of the squared errors")
    _raises(checks.check_loss_fn, nn.L1Loss(), match="L1")
    _raises(checks.check_loss_fn, nn.MSELoss, match=r"the class MSELoss itself.*MSELoss\(\)")
    checks.check_loss_fn(F.mse_loss, quiet=True)


loss_fn = nn.MSELoss()
device = torch.device("cpu")
T = 1000


def _train_factory(bad):
    """A training loop like notebook 4's, with one deliberate mistake."""
    def train_ddpm(model, optimizer, dataloader, epochs, max_steps=None, progress=True):
        losses = []
        for x_0, _ in dataloader:
            t = torch.randint(0, T, (x_0.shape[0],))
            noise = torch.randn_like(x_0)
            x_t = x_0 if bad == "no_noise" else solutions.q_sample(x_0, t, noise)
            pred_noise = model(x_t, t)
            loss = loss_fn(pred_noise, x_0 if bad == "target_x0" else noise)
            if bad == "float":
                loss = torch.tensor(loss.item(), requires_grad=True)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses
    return train_ddpm


def test_training_loop_checks_name_the_mistake():
    _raises(checks.check_training_loop, _train_factory("no_noise"), match="not added any noise")
    _raises(checks.check_training_loop, _train_factory("target_x0"), match="the target is the noise")
    _raises(checks.check_training_loop, _train_factory("float"), match="weights did not change")
    checks.check_training_loop(_train_factory(None), quiet=True)
    for grade in [GRADE['test_train_x_t'], GRADE['test_train_pred_noise'], GRADE['test_train_loss']]:
        grade(_train_factory(None))
    GRADE['test_train_pred_noise'](_train_factory("no_noise"))                # blanks are judged one by one


def _p_sample_factory(bad):
    @torch.no_grad()
    def p_sample_DDPM(model, x, t, t_index):
        eps = model(x, t)
        z = torch.randn_like(x) if t_index > 0 else torch.zeros_like(x)
        return solutions.ddpm_reverse_step(x, eps, t, t_index, noise=2 * z if bad == "double_sigma" else z)
    return p_sample_DDPM


def test_reverse_step_checks_name_the_mistake():
    _raises(checks.check_p_sample_DDPM, lambda model, x, t, t_index: None, match="returned None")
    _raises(checks.check_p_sample_DDPM, _p_sample_factory("double_sigma"), match=r"std 0.0220 .*variance off by \+3\d\d%")
    checks.check_p_sample_DDPM(_p_sample_factory(None), quiet=True)
    GRADE['test_p_sample_DDPM'](_p_sample_factory(None))


class _ConcatCond(solutions.Unet):
    def __init__(self, ch=32, n_classes=10, in_ch=1, emb_dim=None):
        super().__init__(ch=ch, in_ch=in_ch, emb_dim=emb_dim)
        self.class_emb = nn.Embedding(n_classes, self.time_mlp[-1].out_features)

    def forward(self, x, t, y):
        t_emb = self.time_mlp(t)
        y_emb = self.class_emb(y)
        cond_emb = torch.cat([t_emb, y_emb], dim=-1)
        return self.backbone(x, cond_emb)


class _WrongEmbCond(solutions.UNet_cond):
    def __init__(self, ch=32, n_classes=10, **kw):
        super().__init__(ch=ch, n_classes=n_classes, **kw)
        self.class_emb = nn.Embedding(n_classes, 16)


def test_unet_cond_checks_name_the_mistake():
    _raises(checks.check_unet_cond, _ConcatCond, match="don't concatenate")
    _raises(checks.check_unet_cond, _WrongEmbCond, match=r"wrong shape: self.class_emb is nn.Embedding\(10, 16\)")
    checks.check_unet_cond(solutions.UNet_cond, quiet=True)
    for grade in [GRADE['test_UNet_cond_class_emb'], GRADE['test_UNet_cond_y_emb'], GRADE['test_UNet_cond_cond_emb']]:
        grade(solutions.UNet_cond)
    GRADE['test_UNet_cond_y_emb'](_ConcatCond)                                 # judged blank by blank


def test_checks_report_the_students_own_error_first():
    def q_sample(x_start, t, noise=None):
        sqrt_alpha_bar = extract_typo(t)  # noqa: F821  (a NameError, as a student might write)
        return sqrt_alpha_bar

    _raises(checks.check_q_sample, q_sample, match="q_sample raised NameError.*before it set sqrt_alpha_bar")


def test_stored_check_data_is_what_the_reference_gives_now(tmp_path):
    """The self-checks' expected values (data in tutorial_utils) are regenerated from solutions and compared."""
    from ddpm_instructor.graded import write_check_data
    from tutorial_utils.checks import CHECK_DATA

    fresh = torch.load(write_check_data(tmp_path / "check_data.pt"), weights_only=True)
    stored = torch.load(CHECK_DATA, weights_only=True)

    def same(a, b):
        # float32 rounding depends on the CPU's kernels (AVX2, AVX-512, AMX): allow a few ulps of the tensor's own
        # scale (x̂_0 = (x_t - √(1-ᾱ) ε)/√ᾱ reaches ~1000 where ᾱ is tiny, and small entries keep that absolute
        # error); a changed reference differs by far more.
        if isinstance(a, torch.Tensor):
            scale = max(1.0, b.float().abs().max().item()) if isinstance(b, torch.Tensor) and b.numel() else 1.0
            return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-6 * scale)
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b

    assert stored.keys() == fresh.keys()
    for name in fresh:
        assert same(stored[name], fresh[name]), f"{name}: run python -m ddpm_instructor.graded --write-check-data"


def test_self_checks_never_call_the_reference():
    files = sorted((ROOT / "tutorial_utils" / "checks").glob("*.py")) + [ROOT / "tutorial_utils" / "probes.py"]
    src = "".join(p.read_text() for p in files)
    assert "import solutions" not in src and "solutions." not in src.replace("tutorial_utils.", "")
    assert not re.findall(r"from solutions[\w.]* import [^\n]*", src), re.findall(r"from solutions[\w.]* import [^\n]*", src)
