"""ddpm_instructor.coursedir: the nbgrader configuration a course directory generates for grading."""
from __future__ import annotations

from nbgrader.preprocessors import SaveAutoGrades
from traitlets.config.loader import PyFileConfigLoader

from ddpm_instructor.coursedir import CourseDir
from ddpm_instructor.execute import GuardedExecute
from ddpm_instructor.grader_notes import GraderNotes
from ddpm_instructor.judge_graded import JudgeGradedCells

A = "02_forward_closed_form"


def test_autograde_runs_execute_then_judge_then_notes_before_nbgrader_scores(tmp_path):
    course = CourseDir(root=tmp_path / "course", quiet=True)
    path = course.write_config()
    cfg = PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    pps = list(cfg.Autograde.autograde_preprocessors)
    order = [pps.index(pp) for pp in (GuardedExecute, JudgeGradedCells, GraderNotes, SaveAutoGrades)]
    assert order == sorted(order) and order[0] == 0        # nbgrader scores the verdicts, the notes come with them
    assert cfg.GraderNotes.notes_dir == str(course.notes)


def test_per_run_settings_reach_the_preprocessor_that_uses_them(tmp_path):
    traits = CourseDir(root=tmp_path / "course", quiet=True, cell_timeout=7, notebook_timeout=70).traits(A)
    inputs = tmp_path / "course" / "graded_inputs" / A
    assert "--GuardedExecute.timeout=7" in traits and "--GuardedExecute.notebook_timeout=70" in traits
    assert f"--JudgeGradedCells.inputs_dir={inputs.resolve()}" in traits
    assert f"--SandboxKernelManager.inputs_dir={inputs.resolve()}" in traits
    for t in traits:                     # every trait names a class and a trait it has
        cls, trait = t[2:].split("=", 1)[0].split(".")
        known = {"GuardedExecute": GuardedExecute, "JudgeGradedCells": JudgeGradedCells}
        if cls in known:
            assert known[cls].class_traits(config=True).get(trait) is not None, t


def test_judging_limits_reach_nbgrader_as_traits(tmp_path):
    course = CourseDir(root=tmp_path / "course", quiet=True, judge_timeout=12, judge_memory_mb=300)
    traits = course.traits("02_forward_closed_form")
    assert "--JudgeGradedCells.judge_timeout=12" in traits and "--JudgeGradedCells.judge_memory_mb=300" in traits
    assert not any("judge_" in t for t in CourseDir(root=tmp_path / "c2", quiet=True).traits("02_forward_closed_form"))
