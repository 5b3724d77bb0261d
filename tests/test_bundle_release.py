"""Releasing refuses a notebook whose code needs a stage that is not public: what it imports from ``solutions`` and
what it *loads* (a shipped checkpoint loaded without ``model_class=`` is built from its class in ``solutions``)."""
from pathlib import Path

import nbformat
import pytest

from ddpm_instructor import release as rel
from ddpm_instructor.bundle import check_releasable, loaded_solution_classes
from ddpm_instructor.coursedir import CourseDir as Course
from ddpm_instructor.errors import InstructorError

ROOT = Path(__file__).resolve().parent.parent
NB7 = ROOT / "notebooks" / "release" / "07_beyond" / "07_beyond_ddpm.ipynb"


def _nb(tmp_path, code: str) -> Path:
    path = tmp_path / "x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), str(path))
    return path


def test_release_refuses_notebook_7_without_stage_06(tmp_path):
    course = Course(root=tmp_path / "course", quiet=True)
    with pytest.raises(InstructorError, match=r"07_beyond_ddpm\.ipynb loads the checkpoint 'unet_cond' without "
                                              r"model_class=, which builds solutions\.UNet_cond of stage "
                                              r"06_conditional: declare that stage public .*: --public 06_conditional"):
        rel.release(course, ["07_beyond"], public=["02_forward_closed_form", "05_sampling"])


def test_notebook_7_is_releasable_once_06_is_public():
    public = {"02_forward_closed_form", "05_sampling"}
    with pytest.raises(InstructorError, match="--public 06_conditional"):
        check_releasable("07_beyond", [NB7], public)
    check_releasable("07_beyond", [NB7], public | {"06_conditional"})


def test_a_load_into_the_notebooks_own_class_needs_no_stage(tmp_path):
    own = _nb(tmp_path, 'class UNet_cond: pass\nm = load_pretrained("unet_cond", model_class=UNet_cond)')
    check_releasable("08_flow_matching", [own], set())
    assert loaded_solution_classes(nbformat.read(str(own), as_version=4)) == {}
    # unet_digit6 is a solutions.Unet (module ``model``, graded nowhere): every bundle carries it
    check_releasable("04_training", [_nb(tmp_path, 'm = load_mine_or_pretrained("unet_digit6")')], set())
    for call in ('load_pretrained("unet_flow")', 'load_pretrained("unet_flow", model_class=None)',
                 'tutorial_utils.checkpoints.load_mine_or_pretrained("unet_cond", device="cpu")'):
        with pytest.raises(InstructorError, match=r"which builds solutions\.UNet_cond of stage 06_conditional: "
                                                  r".*--public 06_conditional"):
            check_releasable("08_flow_matching", [_nb(tmp_path, f"m = {call}")], set())
    # its own assignment's class: no stage to declare
    with pytest.raises(InstructorError, match="cannot use the reference of its own assignment"):
        check_releasable("06_conditional", [_nb(tmp_path, 'm = load_pretrained("unet_cond")')], set())


NB9 = ROOT / "notebooks" / "release" / "09_applications" / "09_what_a_model_can_do.ipynb"


def test_notebook_9_is_releasable_once_02_05_06_and_07_are_public(tmp_path):
    """Notebook 9 imports q_sample (02), UNet_cond (06), ddim_step and ddim_sample_loop (07, built on 05): release
    says which stage is missing until all four are public, then builds its bundle without its own stage."""
    need = ["02_forward_closed_form", "05_sampling", "06_conditional", "07_beyond"]
    for missing in need:
        with pytest.raises(InstructorError, match=f"--public {missing}"):
            check_releasable("09_applications", [NB9], set(need) - {missing})
    check_releasable("09_applications", [NB9], set(need))
    course = Course(root=tmp_path / "course", quiet=True)
    rel.release(course, ["09_applications"], public=need)
    bundle = next(p for p in (tmp_path / "course").rglob("solutions") if (p / "beyond.py").is_file())
    assert not (bundle / "applications.py").exists() and (bundle / "conditional.py").is_file()
