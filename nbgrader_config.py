"""nbgrader configuration for the DDPM-on-MNIST course (read by `nbgrader ...` run from this folder).

Course layout (nbgrader's standard one, rooted at notebooks/):
    notebooks/source/<assignment>/<notebook>.ipynb    instructor versions (solutions, hidden tests)
    notebooks/release/<assignment>/<notebook>.ipynb   student versions (generated, committed)

Student blanks: `ddpm_instructor.blanks.BlankClearSolutions` replaces nbgrader's ClearSolutions, so that
    ### BEGIN SOLUTION (blank: x_t = None)
    ...
    ### END SOLUTION
becomes the line `x_t = None` in the student version instead of `raise NotImplementedError()`.
Stored outputs: `ddpm_instructor.keep_outputs.ClearAnswerOutputs` replaces nbgrader's ClearOutput, so that the
student versions keep the figures, tables and measured numbers of the source notebooks, and only those: the outputs
of nbgrader cells and self-checks, errors, printed blanks and progress bars are cleared, execution counts too.
(Autograding is unaffected: nbgrader's autograde clears a submission's outputs with its own ClearOutput first.)
Generate the student versions with `./course release` (see notebooks/README.md).
"""
import os

from nbgrader.preprocessors import ClearOutput, ClearSolutions

from ddpm_instructor.blanks import BlankClearSolutions
from ddpm_instructor.keep_outputs import ClearAnswerOutputs

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notebooks")

# GenerateAssignment's own preprocessor list, with ClearSolutions and ClearOutput swapped for the course's subclasses
# (only there: Autograde's sanitize_preprocessors keep nbgrader's ClearOutput, which empties every submitted cell).
from nbgrader.converters import GenerateAssignment  # noqa: E402

_COURSE_PREPROCESSORS = {ClearSolutions: BlankClearSolutions, ClearOutput: ClearAnswerOutputs}
c.GenerateAssignment.preprocessors = [
    _COURSE_PREPROCESSORS.get(pp, pp) for pp in GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default()
]
