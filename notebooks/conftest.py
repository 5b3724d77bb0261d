# pytest collects notebooks/source with nbval (pyproject.toml).  The student versions in release/ contain blanks
# and fail by design; tests/test_student_versions.py executes them on purpose.
collect_ignore = ["release"]

import os

# nbval compares against outputs stored in the `fast` profile; run the kernels in it unless told otherwise.
os.environ.setdefault("DDPM_PROFILE", "fast")
