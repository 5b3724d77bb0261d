"""hub/settings.py, and the hub's small decisions that need no process: usernames, LMS roles, the AGS score of a grade.

(The processes are tested in tests/test_hub.py, tests/test_hub_exchange.py and tests/test_hub_lti.py.)
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from ddpm_instructor.grades import CellScore, Score  # noqa: E402
from ddpm_instructor.lti import score_payload, scores_url  # noqa: E402
from hub import settings, users  # noqa: E402
from hub.auth import lms_role, lti_username  # noqa: E402

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"


def test_the_defaults_are_a_trial_on_loopback():
    s = settings.load({})
    assert (s.auth, s.ip, s.port, str(s.exchange), s.course_id) == ("native", "127.0.0.1", 8000,
                                                                   "/srv/nbgrader/exchange", "ddpm-course")
    assert (s.os_instructors_group, s.os_users_group) == ("ddpm-instructors", "ddpm-hub-users")


@pytest.mark.parametrize("env, says", [
    ({"DDPM_HUB_AUTH": "pam"}, "DDPM_HUB_AUTH='pam': use one of native, lti13, dummy"),
    ({"DDPM_HUB_AUTH": "dummy", "DDPM_HUB_DUMMY_PASSWORD": "long-enough"}, None),
    ({"DDPM_HUB_AUTH": "dummy", "DDPM_HUB_DUMMY_PASSWORD": "short"}, "DDPM_HUB_DUMMY_PASSWORD of 8 characters"),
    ({"DDPM_HUB_AUTH": "dummy", "DDPM_HUB_DUMMY_PASSWORD": "long-enough", "DDPM_HUB_IP": "0.0.0.0"},
     "needs DDPM_HUB_IP on loopback"),
    ({"DDPM_HUB_AUTH": "lti13", "DDPM_LTI_ISSUER": "https://lms"}, "needs DDPM_LTI_CLIENT_ID, DDPM_LTI_AUTHORIZE_URL"),
    ({"DDPM_HUB_PORT": "80a"}, "DDPM_HUB_PORT='80a' is not a port number"),
    ({"DDPM_HUB_IP": "localhost"}, "DDPM_HUB_IP='localhost' is not an IP address"),
    ({"DDPM_HUB_COURSE_ID": "../other"}, "DDPM_HUB_COURSE_ID='../other': letters, digits"),
    ({"DDPM_HUB_OS_GROUPS": "Root"}, "DDPM_HUB_OS_GROUPS='Root'"),
])
def test_a_bad_setting_is_named_with_what_to_do(env, says):
    if says is None:
        assert settings.load(env).auth == "dummy"
        return
    with pytest.raises(settings.SettingsError) as e:
        settings.load(env)
    assert says in str(e.value)


@pytest.mark.parametrize("name, ok", [("alice", True), ("lti-0123456789ab", True), ("Root", False),
                                      ("../etc", False), ("-rf", False), ("a" * 33, False), ("", False)])
def test_a_hub_username_must_be_a_plain_os_username(name, ok):
    assert bool(users.USERNAME.fullmatch(name)) is ok


@pytest.mark.parametrize("roles, role", [
    ([LIS + "membership#Instructor"], "instructor"),
    ([LIS + "membership/Instructor#TeachingAssistant"], "instructor"),
    ([LIS + "institution/person#Administrator", LIS + "membership#Learner"], "instructor"),
    ([LIS + "membership#Learner"], "student"),
    ([LIS + "institution/person#Instructor"], "student"),      # an instructor elsewhere, a student in this course
    ([], "student"), (None, "student"), ([{"role": "Instructor"}], "student"),
])
def test_the_lms_role_decides_student_or_instructor(roles, role):
    assert lms_role(roles) == role


def test_the_username_comes_from_the_lms_id_not_a_name():
    a = lti_username("https://canvas.example", "user-1")
    assert a == lti_username("https://canvas.example", "user-1") and users.USERNAME.fullmatch(a)
    assert a != lti_username("https://canvas.example", "user-2") != lti_username("https://moodle.example", "user-1")


def _score(status, written_pending=False):
    s = Score("ps1", "alice", status, autograded_max=8.0, written_max=2.0)
    if status == "graded":
        s.cells = {"q1": CellScore("hello", "q1", False, 6.0, 8.0),
                   "w1": CellScore("hello", "w1", True, 0.0 if written_pending else 2.0, 2.0, written_pending)}
    return s


def test_the_ags_score_of_each_kind_of_grade():
    t = "2026-12-07T12:00:00.000Z"
    assert score_payload(_score("graded"), "sub-1", timestamp=t)[0] == {
        "userId": "sub-1", "timestamp": t, "scoreMaximum": 10.0, "scoreGiven": 8.0,
        "activityProgress": "Completed", "gradingProgress": "FullyGraded"}
    pending = score_payload(_score("graded", written_pending=True), "sub-1", timestamp=t)[0]
    assert (pending["scoreGiven"], pending["gradingProgress"]) == (6.0, "PendingManual")
    assert score_payload(_score("missing"), "sub-1")[0] is None
    zero = score_payload(_score("missing"), "sub-1", zero_missing=True)[0]
    assert (zero["scoreGiven"], zero["scoreMaximum"], zero["gradingProgress"]) == (0, 10.0, "FullyGraded")
    for status in ("not graded", "failed"):
        assert score_payload(_score(status), "sub-1", zero_missing=True)[0] is None


def test_the_scores_url_keeps_the_line_items_query():
    assert scores_url("https://lms/api/lti/courses/1/line_items/7?type=x") == \
        "https://lms/api/lti/courses/1/line_items/7/scores?type=x"
    assert scores_url("https://lms/lineitems/7/") == "https://lms/lineitems/7/scores"
