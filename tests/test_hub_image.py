"""hub/k8s/ (docs/ZERO_TO_JUPYTERHUB.md): the single-user image installs what ``./course setup`` installs, nothing else.

The recipe's only installs are the course's own commands (``./course setup``: the course with its ``dev`` extra;
``./course hub --setup-only``: the ``hub`` extra and configurable-http-proxy from ``hub/package-lock.json``) on a
Python the course supports; the chart's values use that image and mount the exchange where the hub's settings put it.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hub import settings  # noqa: E402

K8S = REPO / "hub" / "k8s"
INSTALLERS = re.compile(r"\b(pip3?|uv|conda|mamba|npm|npx|pipx|poetry)\b")


def dockerfile() -> tuple[str, list[str]]:
    text = (K8S / "Dockerfile").read_text()
    lines = text.replace("\\\n", " ").splitlines()
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    runs = [line[4:].strip() for line in lines if line.startswith("RUN ")]
    return base, runs


def test_the_image_installs_the_course_with_the_courses_own_commands_only():
    base, runs = dockerfile()
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
    build = re.search(r"-t (\S+):(\S+) \.", (K8S / "Dockerfile").read_text())
    image = values["singleuser"]["image"]
    assert (image["name"], str(image["tag"])) == build.groups()
    mounts = {m["name"]: m["mountPath"] for m in values["singleuser"]["storage"]["extraVolumeMounts"]}
    assert mounts["exchange"] == str(settings.load({}).exchange)
    claim = values["singleuser"]["storage"]["extraVolumes"][0]["persistentVolumeClaim"]["claimName"]
    pvc = yaml.safe_load((K8S / "pvc-exchange.yaml").read_text())
    assert pvc["metadata"]["name"] == claim and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
