"""The one error the instructor tooling raises; the CLI (``ddpm_instructor.cli``) turns it into a message and an exit code."""


class InstructorError(Exception):
    """Something the instructor can fix: the message says what was wrong and how to fix it."""
