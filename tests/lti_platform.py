"""A simulated LTI 1.3 platform (an LMS such as Canvas or Moodle) on 127.0.0.1, for the hub's LTI tests.

It has what a real platform has for a tool: its own RSA key and a JWKS endpoint; an OIDC authorization endpoint that
answers the tool's login redirect with an HTML form carrying a signed id_token (``form_post``, as platforms do); an
OAuth2 token endpoint that accepts only a client-credentials request whose JWT assertion is signed by the tool's
registered key; and an AGS line item whose ``/scores`` endpoint records each score posted with a valid token.
"""
from __future__ import annotations

import html
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"


class Platform:
    def __init__(self, client_id: str = "ddpm-hub-client", deployment_id: str = "1"):
        self.client_id = client_id
        self.deployment_id = deployment_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "platform-key-1"
        self.people: dict[str, dict] = {}         # login_hint -> {sub, name, email, roles}
        self.tool_jwks: dict | None = None        # the tool's public keys, "registered" by the test
        self.scores: list[dict] = []              # every accepted POST to a line item's /scores
        self.refused: list[str] = []
        self.tokens: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # ---- the URLs an admin copies from the LMS into the hub's settings
    @property
    def issuer(self) -> str:
        return self.url

    @property
    def authorize_url(self) -> str:
        return self.url + "/authorize"

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    def lineitem(self, assignment: str) -> str:
        return f"{self.url}/lineitems/{assignment}?type=ddpm"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- what the platform signs
    def pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def id_token(self, login_hint: str, nonce: str, assignment: str = "ps1", key=None, **overrides) -> str:
        person = self.people[login_hint]
        now = int(time.time())
        claims = {
            "iss": self.issuer, "aud": self.client_id, "sub": person["sub"], "iat": now, "exp": now + 300,
            "nonce": nonce, "name": person["name"], "email": person["email"],
            LTI + "message_type": "LtiResourceLinkRequest", LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id, LTI + "target_link_uri": "",
            LTI + "roles": person["roles"],
            LTI + "resource_link": {"id": f"link-{assignment}", "title": f"Assignment {assignment}"},
            LTI + "context": {"id": "course-1", "label": "DDPM", "title": "Diffusion models"},
            LTI + "custom": {"assignment": assignment},
            AGS_CLAIM: {"scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/score"],
                        "lineitem": self.lineitem(assignment)},
            **overrides,
        }
        pem = key if key is not None else self.pem()
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": self.kid})

    def _handler(self):
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: str | bytes, ctype: str = "application/json"):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _form(self) -> dict:
                n = int(self.headers.get("Content-Length", 0))
                return {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(n).decode()).items()}

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                if url.path == "/jwks":
                    jwk = json.loads(RSAAlgorithm.to_jwk(platform.key.public_key()))
                    jwk.update({"kid": platform.kid, "alg": "RS256", "use": "sig"})
                    return self._send(200, json.dumps({"keys": [jwk]}))
                if url.path == "/authorize":
                    ok = (q.get("client_id") == platform.client_id and q.get("response_type") == "id_token"
                          and q.get("response_mode") == "form_post" and q.get("login_hint") in platform.people)
                    if not ok:
                        platform.refused.append(f"authorize {q}")
                        return self._send(400, json.dumps({"error": "invalid_request"}))
                    token = platform.id_token(q["login_hint"], q["nonce"], q.get("lti_message_hint") or "ps1")
                    fields = {"id_token": token, "state": q["state"]}
                    inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
                                     for k, v in fields.items())
                    page = (f'<form method="post" action="{html.escape(q["redirect_uri"])}">{inputs}</form>'
                            "<script>document.forms[0].submit()</script>")
                    return self._send(200, page, "text/html")
                return self._send(404, "{}")

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/token":
                    return self._token(self._form())
                if url.path.startswith("/lineitems/") and url.path.endswith("/scores"):
                    return self._score(url)
                return self._send(404, "{}")

            def _token(self, form: dict):
                try:
                    assert form.get("grant_type") == "client_credentials"
                    assert form.get("client_assertion_type") == \
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in form.get("scope", "").split()
                    keys = jwt.PyJWKSet.from_dict(platform.tool_jwks)
                    kid = jwt.get_unverified_header(form["client_assertion"])["kid"]
                    key = next(k for k in keys.keys if k.key_id == kid)
                    claims = jwt.decode(form["client_assertion"], key.key, algorithms=["RS256"],
                                        audience=platform.token_url, issuer=platform.client_id)
                    assert claims["sub"] == platform.client_id
                except Exception as e:  # noqa: BLE001 - any failure is the platform's 401
                    platform.refused.append(f"token: {e!r}")
                    return self._send(401, json.dumps({"error": "invalid_client"}))
                token = secrets.token_urlsafe(24)
                platform.tokens.add(token)
                return self._send(200, json.dumps({"access_token": token, "token_type": "Bearer",
                                                   "expires_in": 3600, "scope": form["scope"]}))

            def _score(self, url):
                auth = self.headers.get("Authorization", "")
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                if not auth.startswith("Bearer ") or auth[7:] not in platform.tokens:
                    platform.refused.append("score without a valid token")
                    return self._send(401, "{}")
                if self.headers.get("Content-Type") != "application/vnd.ims.lis.v1.score+json":
                    platform.refused.append(f"score content type {self.headers.get('Content-Type')}")
                    return self._send(415, "{}")
                platform.scores.append({"lineitem": url.path[:-len("/scores")], "query": url.query,
                                        **json.loads(body)})
                return self._send(200, "{}")

        return Handler
