"""nbgrader configuration for the DDPM-on-MNIST course (read by `nbgrader ...` run from this folder).

Course layout (nbgrader's standard one, rooted at notebooks/):
    notebooks/source/<assignment>/<notebook>.ipynb    instructor versions (solutions, hidden tests)
    notebooks/release/<assignment>/<notebook>.ipynb   student versions (generated, committed)

Student blanks: `ddpm_instructor.blanks.BlankClearSolutions` replaces nbgrader's ClearSolutions, so that
    ### BEGIN SOLUTION (blank: x_t = None)
    ...
    ### END SOLUTION
becomes the line `x_t = None` in the student version instead of `raise NotImplementedError()`.
Generate the student versions with `./course release` (see notebooks/README.md).
"""
import os

from nbgrader.preprocessors import ClearSolutions

from ddpm_instructor.blanks import BlankClearSolutions

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notebooks")

# GenerateAssignment's own preprocessor list, with ClearSolutions swapped for the course's subclass.
from nbgrader.converters import GenerateAssignment  # noqa: E402

c.GenerateAssignment.preprocessors = [
    BlankClearSolutions if pp is ClearSolutions else pp for pp in GenerateAssignment.class_traits()["preprocessors"].make_dynamic_default()
]
