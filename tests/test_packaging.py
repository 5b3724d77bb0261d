"""The set-up files agree with each other: environment.yml mirrors pyproject, CI runs the README's command."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name_and_spec(req: str):
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = dict(_name_and_spec(r) for r in project["dependencies"] + extras["instructor"] + extras["dev"]
                  if not r.startswith(project["name"]))
    assert f'{project["name"]}[instructor]' in extras["dev"], "the test suite needs the instructor tooling"
    env_lines = [l.strip().lstrip("- ").strip() for l in (ROOT / "environment.yml").read_text().splitlines()
                 if l.strip().startswith("- ")]
    found = dict(_name_and_spec(l) for l in env_lines if l and l[0].isalpha() and l not in ("pip",))
    for name, spec in wanted.items():
        assert name in found, f"{name} is in pyproject.toml but not in environment.yml"
        assert found[name] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {found[name]!r}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S)
    assert commands, "README has no command block"
    first_block = [l for l in commands[0].splitlines() if l.strip() and not l.startswith("#")]
    assert first_block == ["./course lab", "./course test"], first_block
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./course test\b", ci, re.M), ".ci/run must call the README's test command"


def test_torch_is_a_range_not_a_pin():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if r.startswith("torch"))
    assert ">=" in torch_req and "==" not in torch_req
