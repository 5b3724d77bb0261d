"""Login to the class hub: LTI 1.3 from the LMS, with the LMS role mapped to student or instructor.

:class:`CourseLTI13Authenticator` is jupyterhub-ltiauthenticator's LTI 1.3 authenticator (its login and launch
endpoints, its signature, nonce and state checks) with three additions:

* the hub username comes from the LMS's own id of the person (the id_token's ``iss`` and ``sub``), never from a name or
  e-mail the person can change: ``lti-`` and 12 hex digits of their hash, also a valid OS username;
* the LMS role sets the hub group: an Instructor, TeachingAssistant, ContentDeveloper or Administrator of the
  context is in ``instructors`` (the instructor lab, the exchange's submissions); anyone else is a student;
* every launch is recorded in ``<state>/lti/launches.json`` (ddpm_instructor/lti.py): who the LMS says each hub user
  is (its ``sub``, for grade passback) and the line item of the assignment launched from (its Assignment and Grade
  Services claim), which ``./course instructor grades --lti`` posts scores to.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ltiauthenticator.lti13.auth import LTI13Authenticator
from traitlets import Unicode

from ddpm_instructor.lti import record_launch
from .settings import INSTRUCTORS_GROUP

ROLES_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/roles"
# LTI 1.3 role URIs (context and institution roles) that make a person an instructor of the course on the hub
INSTRUCTOR_ROLES = ("membership#Instructor", "membership#ContentDeveloper", "membership#Administrator",
                    "membership/Instructor#TeachingAssistant", "institution/person#Administrator")


def lms_role(roles) -> str:
    """'instructor' if any LTI role of the launch is an instructor's, else 'student'."""
    for role in roles or ():
        if isinstance(role, str) and any(role.endswith(r) for r in INSTRUCTOR_ROLES):
            return "instructor"
    return "student"


def lti_username(issuer: str, sub: str) -> str:
    """The hub (and OS) username of the LMS person ``sub`` of platform ``issuer``."""
    return "lti-" + hashlib.sha256(f"{issuer}\n{sub}".encode()).hexdigest()[:12]


class CourseLTI13Authenticator(LTI13Authenticator):
    launches_file = Unicode(config=True, help="Where launches are recorded (ddpm_instructor/lti.py)")
    token_url = Unicode(config=True, help="The platform's OAuth2 token endpoint (for grade passback)")

    async def authenticate(self, handler, data=None):
        data = data or {}
        sub = data.get("sub")
        if not sub:
            return None
        role = lms_role(data.get(ROLES_CLAIM))
        name = lti_username(self.issuer, sub)
        if self.launches_file:
            record_launch(Path(self.launches_file), name, role, data, issuer=self.issuer,
                          client_id=sorted(self.client_id)[0] if self.client_id else "", token_url=self.token_url)
        return {"name": name, "groups": [INSTRUCTORS_GROUP] if role == "instructor" else [],
                "auth_state": None}
