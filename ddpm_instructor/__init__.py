"""The instructor's and maintainer's side of the DDPM course (installed with the ``instructor`` extra).

One module per step of the round trip, each with a small entry function, and one CLI that dispatches:

    cli        ./course instructor STEP            -> release | collect | autograde | feedback | grades
    coursedir  the grading course directory (paths, generated nbgrader config, gradebook)
    release    student versions (blanks: ``blanks``) and student bundles (``bundle``)
    collect    submissions from folders and LMS zips; stripped or foreign grading metadata repaired
    autograde  nbgrader over chunks of submissions, its preprocessors one job each: ``execute.GuardedExecute`` (cells
               run in the ``sandbox``, outputs capped by ``output_cap``), ``judge_graded`` (tests judged by
               ``graded`` outside the kernel), ``grader_notes`` (the notes cell and the record)
    feedback, grades                           HTML pages, CSV exports;  ``records``: typed notes
    train      the shipped checkpoints' training script

Students never import this package: ``tutorial_utils`` is theirs.
"""
