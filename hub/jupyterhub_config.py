# The class hub's JupyterHub config: `./course hub` runs `jupyterhub -f hub/jupyterhub_config.py` as root.
#
# Settings come from environment variables (hub/settings.py lists them, with their defaults); what is below is
# plain JupyterHub config, to read and adapt:
#   - students and instructors each get their own OS user (LocalProcessSpawner, hub/users.py makes the accounts);
#   - students' servers run a Python without the reference answers or the grader (hub/student_env.py), and the
#     checkout is closed to all but root and the instructors (hub/checkout.py);
#   - a student's server is the student lab + nbgrader's Assignment List, an instructor's the Formgrader
#     (hub/labs.py); the exchange is closed per student (hub/exchange.py);
#   - login: LTI 1.3 from the LMS (hub/auth.py), NativeAuthenticator for a trial, or a shared-password dummy for tests.
# Kubernetes (Zero to JupyterHub): docs/ZERO_TO_JUPYTERHUB.md.
import sys
from functools import partial
from pathlib import Path

HUB = Path(__file__).resolve().parent
sys.path.insert(0, str(HUB.parent))          # the `hub` package next to this file

from hub import settings, spawn, users  # noqa: E402
from hub.exchange import ExchangeSetupError  # noqa: E402
from hub.student_env import StudentEnvError  # noqa: E402

c = get_config()  # noqa: F821
try:
    s = settings.load()
    config_dirs = spawn.prepare(s)           # groups, exchange, course folder, role configs (as root)
except (settings.SettingsError, users.UserError, ExchangeSetupError, StudentEnvError) as e:
    sys.exit(f"error: {e}")

# ---- where the hub listens and keeps its state
c.JupyterHub.bind_url = f"http://{s.ip}:{s.port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = s.api_port
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [str(HUB / "node_modules" / ".bin" / "configurable-http-proxy")]
# the hub's own files (its database holds every user, their tokens and, with the native login, password hashes):
# in <state>/hub/, 0700 root (hub/spawn.py), never readable by the users
c.ConfigurableHTTPProxy.pid_file = str(s.hub_dir / "proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{s.hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(s.hub_dir / "jupyterhub_cookie_secret")

# ---- each user's server: their own OS user, the lab of their role, and its Python: the students' environment
# (hub/student_env.py: the bundle's packages, no reference answers, no grader) or, for instructors, the course venv;
# hub/spawn.py's pre_spawn sets the command and the environment; nothing of the hub's own environment passes on
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [str(Path(sys.executable).parent / "jupyterhub-singleuser")]
c.Spawner.env_keep = ["LANG", "LC_ALL"]
c.Spawner.default_url = "/lab"
c.Spawner.pre_spawn_hook = partial(spawn.pre_spawn, s=s, config_dirs=config_dirs)
c.Spawner.http_timeout = 120                  # a first lab start on a busy machine
c.Spawner.start_timeout = 120
c.Spawner.mem_limit = "4G"                    # shown to the server; LocalProcessSpawner does not enforce it

# ---- login
c.Authenticator.admin_users = set(s.admins)
c.Authenticator.blocked_users = {"root"}
c.Authenticator.username_pattern = users.USERNAME.pattern   # a valid OS username (hub/users.py)
if s.auth != "lti13":                          # the local logins: instructors named by DDPM_HUB_INSTRUCTORS
    c.JupyterHub.load_groups = {settings.INSTRUCTORS_GROUP: {"users": list(s.instructors)}}
if s.auth == "lti13":
    c.JupyterHub.authenticator_class = "hub.auth.CourseLTI13Authenticator"
    c.Authenticator.manage_groups = True      # the LMS role sets the instructors group at each launch
    c.Authenticator.allow_all = True          # anyone the LMS launches (the course's members)
    c.CourseLTI13Authenticator.issuer = s.lti.issuer
    c.CourseLTI13Authenticator.client_id = [s.lti.client_id]
    c.CourseLTI13Authenticator.authorize_url = s.lti.authorize_url
    c.CourseLTI13Authenticator.jwks_endpoint = s.lti.jwks_url
    c.CourseLTI13Authenticator.token_url = s.lti.token_url
    c.CourseLTI13Authenticator.launches_file = str(s.lti_dir / "launches.json")
elif s.auth == "native":
    import nativeauthenticator

    c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
    c.NativeAuthenticator.open_signup = False  # an admin approves each sign-up at /hub/authorize
    c.Authenticator.allow_all = True           # every approved user
    c.JupyterHub.template_paths = [str(Path(nativeauthenticator.__file__).parent / "templates")]
else:  # dummy: tests on loopback only (hub/settings.py refuses it elsewhere)
    c.JupyterHub.authenticator_class = "dummy"
    c.DummyAuthenticator.password = s.dummy_password
    c.Authenticator.allow_all = True
