"""hub/k8s/ (docs/ZERO_TO_JUPYTERHUB.md): the single-user images install what ``./course setup`` installs, nothing else,
and the students' image carries no answers.

The recipe's only installs are the course's own commands (``./course setup``: the course with its ``dev`` extra;
``./course hub --setup-only``: the ``hub`` extra and configurable-http-proxy from ``hub/package-lock.json``) on a
Python the course supports; the student target copies only the venv and the students' environment
(hub/student_env.py), which is made here as the recipe makes it and searched for answers; the chart's values use the
images, mount the exchange where the hub's settings put it, and load the course's hub config (a uid per student,
hub/uids.py), which is run here against a plain traitlets config.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hub import settings, uids  # noqa: E402

K8S = REPO / "hub" / "k8s"
INSTALLERS = re.compile(r"\b(pip3?|uv|conda|mamba|npm|npx|pipx|poetry)\b")


def dockerfile() -> tuple[str, list[str]]:
    text = (K8S / "Dockerfile").read_text()
    lines = text.replace("\\\n", " ").splitlines()
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    runs = [line[4:].strip() for line in lines if line.startswith("RUN ")]
    return base, runs


def stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions by stage name (continuation lines joined, comments left out)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in (K8S / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            current = line.split()[-1]
            out[current] = [line]
        elif line and not line.startswith("#") and current:
            out[current].append(line)
    return out


def built_tags() -> dict[str, str]:
    """{target: image:tag} from the recipe's build commands."""
    text = (K8S / "Dockerfile").read_text()
    return dict(re.findall(r"--target (\S+) -t (\S+) \.", text))


def test_the_image_installs_the_course_with_the_courses_own_commands_only():
    st = stages()
    runs = [line[4:] for target in ("instructor", "student") for line in st[target] if line.startswith("RUN ")]
    commands = [c.strip() for run in runs for c in run.split("&&")]
    assert "./course setup" in commands and "./course hub --setup-only" in commands
    # the system packages (apt-get: bubblewrap, Node.js) are not Python or Node packages
    others = [c for c in commands if INSTALLERS.search(c) and not c.startswith(("apt-get", "rm -rf /var/lib/apt"))]
    assert others == [], f"the image installs Python or Node packages outside ./course: {others}"
    # what those commands install: the dev extra (./course setup) and the hub extra (tools/course_hub)
    assert '-e "$HERE[dev]"' in (REPO / "course").read_text()
    hub_script = (REPO / "tools" / "course_hub").read_text()
    assert '-e "$HERE[hub]"' in hub_script and "npm ci" in hub_script


def test_the_images_python_is_one_the_course_supports():
    base, _ = dockerfile()
    m = re.fullmatch(r"python:(\d+)\.(\d+)[-\w.]*", base)
    assert m, f"the base image {base} is not an official python:X.Y image"
    version = (int(m.group(1)), int(m.group(2)))
    spec = re.search(r'requires-python = ">=(\d+)\.(\d+),<(\d+)\.(\d+)"', (REPO / "pyproject.toml").read_text())
    low, high = (int(spec.group(1)), int(spec.group(2))), (int(spec.group(3)), int(spec.group(4)))
    assert low <= version < high


def test_the_proxy_is_pinned_by_the_lock_file():
    wanted = json.loads((REPO / "hub" / "package.json").read_text())["dependencies"]["configurable-http-proxy"]
    lock = json.loads((REPO / "hub" / "package-lock.json").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", wanted), "package.json pins an exact version"
    assert lock["packages"]["node_modules/configurable-http-proxy"]["version"] == wanted


def test_the_chart_values_use_the_image_and_the_hubs_exchange_path():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    image = values["singleuser"]["image"]
    assert f"{image['name']}:{image['tag']}" == built_tags()["student"]
    mounts = {m["name"]: m["mountPath"] for m in values["singleuser"]["storage"]["extraVolumeMounts"]}
    assert mounts["exchange"] == str(settings.load({}).exchange)
    claim = values["singleuser"]["storage"]["extraVolumes"][0]["persistentVolumeClaim"]["claimName"]
    pvc = yaml.safe_load((K8S / "pvc-exchange.yaml").read_text())
    assert pvc["metadata"]["name"] == claim and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_both_images_share_one_python_and_the_students_image_copies_no_checkout():
    st = stages()
    assert set(st) == {"instructor", "student", "hub"} and set(built_tags()) == {"instructor", "student", "hub"}
    assert st["instructor"][0].split()[1] == st["student"][0].split()[1]     # the students' venv links that Python
    student = st["student"]
    copies = [line for line in student if line.startswith(("COPY", "ADD"))]
    assert copies and all(line.startswith("COPY --from=instructor ") for line in copies), copies
    sources = sorted(line.split()[2] for line in copies)
    assert sources == ["/opt/ddpm-course/.venv", "/opt/ddpm-course/hub/k8s/start-singleuser.sh", "/opt/ddpm-student"]
    made = next(line for line in st["instructor"] if "hub.student_env" in line)
    assert made.split()[-2] == "/opt/ddpm-student"
    assert "ENV DDPM_ENVIRONMENT=/opt/ddpm-student/environment" in student


def test_the_exchanges_group_is_the_one_the_hub_and_the_uids_name():
    for target in ("instructor", "student"):
        run = next(line for line in stages()[target] if "groupadd" in line)
        m = re.search(r"groupadd --gid (\d+) (\S+)", run)
        assert (int(m.group(1)), m.group(2)) == (uids.INSTRUCTORS_GID, settings.load({}).os_instructors_group)


@pytest.fixture(scope="module")
def student_image_env(tmp_path_factory):
    """The students' environment made as the recipe makes it (``python -m hub.student_env DEST``, no public stage)."""
    dest = tmp_path_factory.mktemp("image") / "ddpm-student"
    r = subprocess.run([sys.executable, "-m", "hub.student_env", str(dest)], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return dest


def test_the_students_image_carries_no_answers_and_no_grader(student_image_env):
    from solutions import STAGES

    dest = student_image_env
    files = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() and "venv" not in p.parts}
    shipped = {p.split("/")[-1][:-3] for p in files if re.fullmatch(r"course/\.solutions-[^/]+/\w+\.py", p)}
    assert shipped == {"__init__"} | {m for m, stage in STAGES.items() if stage is None}
    assert not any(p.startswith(("course/ddpm_instructor", "course/notebooks", "course/tests")) for p in files)
    assert {p.split("/")[1] for p in files if p.startswith("course/")} >= {"tutorial_utils", "hub", "checkpoints"}
    # its own Python, away from the checkout, finds (without running them: no PyTorch import) what a student's
    # kernel in the image would import
    probe = ("import importlib.util as u, json\nprint(json.dumps({m: (u.find_spec(m) or None) and u.find_spec(m).origin"
             " for m in ('ddpm_instructor', 'solutions', 'tutorial_utils')}))")
    r = subprocess.run([str(dest / "venv" / "bin" / "python"), "-c", probe], cwd=dest, capture_output=True,
                       text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert got["ddpm_instructor"] is None, got
    assert got["solutions"] == str(dest / "course" / "solutions" / "__init__.py"), got
    assert got["tutorial_utils"] == str(dest / "course" / "tutorial_utils" / "__init__.py"), got
    environment = (dest / "environment").read_text()
    assert f"JUPYTER_CONFIG_PATH={dest / 'etc' / 'student'}:" in environment
    assert (dest / "etc" / "student" / "nbgrader_config.py").is_file()


def run_hub_config() -> "object":
    """hub/k8s/jupyterhub_config_course.py run as the chart's hub runs a jupyterhub_config.d file."""
    from traitlets.config import Config

    c = Config()
    c.KubeSpawner.environment = {"FROM_THE_CHART": "1"}
    path = K8S / "jupyterhub_config_course.py"
    scope = {"get_config": lambda: c, "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), scope)
    return c, scope


def test_the_course_hub_config_gives_each_user_their_uid_and_instructors_their_image():
    c, scope = run_hub_config()
    k = c.KubeSpawner
    assert k.uid is k.gid is k.fs_gid is uids.spawner_uid
    assert k.supplemental_gids is uids.spawner_supplemental_gids
    assert k.environment == {"FROM_THE_CHART": "1", "USER": uids.spawner_username}
    assert scope["INSTRUCTOR_IMAGE"] == built_tags()["instructor"]
    hook = k.pre_spawn_hook
    for groups, image in ((["instructors"], built_tags()["instructor"]), ([], "from-the-chart")):
        spawner = SimpleNamespace(image="from-the-chart", volumes=[], volume_mounts=[],
                                  user=SimpleNamespace(name="x", groups=[SimpleNamespace(name=g) for g in groups]))
        hook(spawner)
        assert spawner.image == image


def test_the_chart_loads_the_course_config_and_every_pod_agrees_on_the_uids():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    files = values["hub"]["extraFiles"]
    header = (K8S / "values.yaml").read_text()
    docs = (REPO / "docs" / "ZERO_TO_JUPYTERHUB.md").read_text()
    sources = {}
    for key, spec in files.items():
        m = re.search(rf"--set-file hub\.extraFiles\.{re.escape(key)}\.stringData=(\S+)", header)
        assert m and (REPO / m.group(1)).is_file(), key
        assert f"--set-file hub.extraFiles.{key}.stringData={m.group(1)}" in docs, key
        sources[m.group(1)] = spec["mountPath"]
    assert sources == {"hub/uids.py": "/usr/local/etc/jupyterhub/hub/uids.py",
                       "hub/__init__.py": "/usr/local/etc/jupyterhub/hub/__init__.py",
                       "hub/k8s/jupyterhub_config_course.py":
                           "/usr/local/etc/jupyterhub/jupyterhub_config.d/ddpm_course.py"}
    hub_env, pod_env = values["hub"]["extraEnv"], values["singleuser"]["extraEnv"]
    assert hub_env[uids.OVERRIDES_ENV] == pod_env[uids.OVERRIDES_ENV]
    assert uids.overrides_from_env(hub_env) == {}
    assert pod_env[uids.MODE_ENV] == "hash"


def test_the_exchange_layout_job_runs_the_instructor_image_on_the_exchange_volume():
    job = yaml.safe_load((K8S / "job-exchange.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == built_tags()["instructor"]
    assert container["command"][-2:] == ["-m", "hub.prepare_exchange"]
    assert container["volumeMounts"][0]["mountPath"] == str(settings.load({}).exchange)
    pvc = yaml.safe_load((K8S / "pvc-exchange.yaml").read_text())
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_a_stage_declared_public_reaches_the_students_environment_in_one_rename(student_image_env):
    from hub.student_env import StudentEnv, place_solutions

    env = StudentEnv(student_image_env, Path(sys.prefix))
    link = env.course / "solutions"
    before = os.readlink(link)
    assert place_solutions(env, {"02_forward_closed_form"}) == ["helpers", "model", "diffusion"]
    assert link.is_symlink() and (link / "diffusion.py").is_file() and not (link / "training.py").exists()
    assert place_solutions(env, set()) == ["helpers", "model"]
    assert os.readlink(link) == before and not (link / "diffusion.py").exists()
    assert sorted(p.name for p in env.course.glob(".solutions-*")) == [before]      # no stale copy left


# ---- the hub's image and login (LMS role -> instructors group, launches for `grades --lti`), the instructors' volume

CHART_CONFIG_DIR = "/usr/local/etc/jupyterhub"          # the chart's hub config folder, on the hub's import path


def local_imports(module: str) -> set[str]:
    """The checkout's files that importing ``module`` loads at module level (imports inside functions left out)."""
    import ast

    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        path = REPO / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = REPO / name.replace(".", "/") / "__init__.py"
        rel = path.relative_to(REPO).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]          # the packages above
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        for node in ast.parse(path.read_text()).body:                          # module level only
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
                if base.split(".")[0] in ("hub", "ddpm_instructor"):
                    todo.append(base)
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] in ("hub", "ddpm_instructor")]
    return seen


def hub_extra() -> dict[str, str]:
    """{distribution: its requirement string} of pyproject's hub extra."""
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["hub"]
    return {re.match(r"[A-Za-z0-9_.\-]+", r).group(0).lower(): r for r in extra}


def test_the_hub_image_is_the_charts_with_the_course_login_only_and_the_hub_extras_pins():
    hub = stages()["hub"]
    chart = re.search(r"--version (\d+\.\d+\.\d+)", (K8S / "values.yaml").read_text()).group(1)
    assert hub[0] == f"FROM quay.io/jupyterhub/k8s-hub:{chart} AS hub", hub[0]
    copies = [line.split()[1:] for line in hub if line.startswith(("COPY", "ADD"))]
    assert copies and all(not c[0].startswith("--") for c in copies), copies      # from the checkout, no --from
    copied = {}
    for *sources, dest in copies:
        for src in sources:
            copied[src] = dest + Path(src).name
    # exactly what hub/auth.py loads, beside the chart's config, at the path its module name says
    assert set(copied) == local_imports("hub.auth"), sorted(copied)
    assert copied == {src: f"{CHART_CONFIG_DIR}/{src}" for src in copied}
    # pip: only the hub extra's own requirement strings, for what hub/auth.py imports from outside the course
    installs = [shlex_split(line[4:]) for line in hub if line.startswith("RUN ") and INSTALLERS.search(line)]
    assert len(installs) == 1 and installs[0][:3] == ["pip", "install", "--no-cache-dir"], installs
    specs = installs[0][3:]
    extra = hub_extra()
    assert all(re.match(r"[A-Za-z0-9_.\-]+", s).group(0).lower() in extra for s in specs), specs
    assert {s: extra[re.match(r"[A-Za-z0-9_.\-]+", s).group(0).lower()] for s in specs} == {s: s for s in specs}
    assert {"jupyterhub", "jupyterhub-ltiauthenticator"} <= {re.match(r"[A-Za-z0-9_.\-]+", s).group(0).lower()
                                                            for s in specs}


def shlex_split(command: str) -> list[str]:
    import shlex

    return shlex.split(command)


def test_the_hub_image_files_alone_import_the_course_login(tmp_path):
    """The copied files, in a folder of their own (no checkout), are enough for ``import hub.auth``."""
    import shutil

    for rel in local_imports("hub.auth"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    probe = ("import json, sys, hub.auth\nprint(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() if "
             "n.split('.')[0] in ('hub', 'ddpm_instructor'))))")
    r = subprocess.run([sys.executable, "-P", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = json.loads(r.stdout)
    assert loaded and all(f.startswith(str(tmp_path)) for f in loaded), loaded


def test_the_chart_values_log_in_with_the_course_authenticator_and_keep_launches_for_the_instructors():
    from hub.auth import CourseLTI13Authenticator

    values = yaml.safe_load((K8S / "values.yaml").read_text())
    hub = values["hub"]
    assert f"{hub['image']['name']}:{hub['image']['tag']}" == built_tags()["hub"]
    config = hub["config"]
    assert config["JupyterHub"]["authenticator_class"] == "hub.auth.CourseLTI13Authenticator"
    assert config["Authenticator"]["manage_groups"] is True         # the LMS role fills the instructors group
    course = config["CourseLTI13Authenticator"]
    traits = CourseLTI13Authenticator.class_traits(config=True)
    assert set(course) <= set(traits), set(course) - set(traits)  # no misspelt setting the hub would ignore
    assert "LTI13Authenticator" not in config                       # one section: the course's class reads its own
    s = settings.load({})
    assert course["launches_file"] == str(s.lti_dir / "launches.json")   # where `grades --lti` looks by default
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in hub["extraVolumes"]}
    [mount] = [m for m in hub["extraVolumeMounts"] if m["mountPath"] == str(s.lti_dir)]
    pvc = yaml.safe_load((K8S / "pvc-course.yaml").read_text())
    assert claims[mount["name"]] == pvc["metadata"]["name"] and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert mount["subPath"] == "lti" and not mount.get("readOnly")


def test_instructors_pods_mount_the_course_folder_and_the_launches_and_students_pods_do_not():
    c, scope = run_hub_config()
    hook = c.KubeSpawner.pre_spawn_hook
    s = settings.load({})
    chart_volumes, chart_mounts = [{"name": "exchange"}], [{"name": "exchange", "mountPath": str(s.exchange)}]
    pods = {}
    for role, groups in (("instructor", ["instructors"]), ("student", [])):
        spawner = SimpleNamespace(image="from-the-chart", volumes=chart_volumes, volume_mounts=chart_mounts,
                                  user=SimpleNamespace(name="x", groups=[SimpleNamespace(name=g) for g in groups]))
        hook(spawner)
        pods[role] = spawner
    assert chart_volumes == [{"name": "exchange"}] and len(chart_mounts) == 1      # the chart's lists untouched
    student, instructor = pods["student"], pods["instructor"]
    assert student.volumes == chart_volumes and student.volume_mounts == chart_mounts
    pvc = yaml.safe_load((K8S / "pvc-course.yaml").read_text())
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in instructor.volumes}
    mounts = {m["mountPath"]: m for m in instructor.volume_mounts}
    course, lti = mounts[str(s.course_root)], mounts[str(s.lti_dir)]
    assert claims[course["name"]] == claims[lti["name"]] == pvc["metadata"]["name"]
    assert (course["subPath"], lti["subPath"], lti.get("readOnly")) == ("course", "lti", True)
    assert not course.get("readOnly")
    assert str(s.exchange) in mounts                                              # the chart's mounts kept


def test_the_course_volume_layout_job_gives_the_instructors_group_the_folders_the_pods_mount():
    job = yaml.safe_load((K8S / "job-course.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    pvc = yaml.safe_load((K8S / "pvc-course.yaml").read_text())
    [volume] = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    s = settings.load({})
    made = {}
    for container in pod["containers"]:
        [mount] = container["volumeMounts"]
        assert mount["name"] == volume["name"] and mount["mountPath"] == str(s.state)
        assert container["securityContext"]["runAsUser"] == 0
        cmd = container["command"]
        assert cmd[:2] == ["install", "-d"]
        opts = dict(zip(cmd[2:-1:2], cmd[3:-1:2]))
        made[cmd[-1]] = (int(opts["-o"]), int(opts["-g"]), opts["-m"])
    hub_uid = 1000                                       # the chart's hub user (hub.containerSecurityContext)
    assert made == {str(s.course_root): (0, uids.INSTRUCTORS_GID, "2770"),
                    str(s.lti_dir): (hub_uid, uids.INSTRUCTORS_GID, "2750")}
