"""The stored outputs of the cells that training fills: a real `laptop`-profile run's, labelled as such.

A source notebook's outputs are re-made in the `smoke` profile (``tools/notebook_outputs.py``): 20 training steps, so
its loss curve, its sanity check, its samples and the judge's verdict show noise ("0/8 read as a 6").  The cells
tagged ``laptop-output`` (``LAPTOP_TAG``) store instead the outputs of a real laptop-profile run of the notebook,
made once by the maintainer::

    .venv/bin/python tools/notebook_outputs.py --profile laptop [NOTEBOOK ...]

Each such cell's outputs start with one line (``label``) saying that it is a laptop run, on how many cores of which
CPU, in which precision, how long the whole notebook and the cell took, and that the student's own run replaces
it.  The figures come from the run itself and are kept in ``LAPTOP_JSON`` (benchmarks/notebook_laptop_outputs.json,
one ``LaptopRun`` per notebook), the one source of truth the notebooks' text may quote.

* A smoke refresh keeps these cells' laptop outputs (``keep_laptop_outputs``) instead of overwriting them.
* Each tagged cell is also tagged ``nbval-ignore-output``: nbval compares every other cell as before.
* ``./course release`` keeps them in the student versions: ``ClearAnswerOutputs`` keeps the text of cells tagged
  ``laptop-output`` (they print a run's numbers, never a blank's value), and still clears errors and progress bars.

Pure functions on nbformat notebooks: nothing here executes a notebook (``notebook_outputs.py`` does).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
LAPTOP_TAG = "laptop-output"
IGNORE_TAG = "nbval-ignore-output"
LAPTOP_JSON = ROOT / "benchmarks" / "notebook_laptop_outputs.json"
LABEL_START = "A laptop run on "          # how a label output is recognised (``is_label``)
BUSY_LOAD = 1.25                          # load average per core above which the label says the machine was busy

__all__ = ["LAPTOP_TAG", "IGNORE_TAG", "LAPTOP_JSON", "LaptopRun", "LaptopOutputError", "laptop_cells", "label",
           "label_output", "is_label", "has_laptop_run", "ensure_ignored", "stale_cells", "keep_laptop_outputs",
           "store_laptop_outputs", "source_hash", "precision_of", "read_runs", "write_run"]


class LaptopOutputError(ValueError):
    """A laptop run cannot be stored: the notebook or the run is not what the tool expects (the message says why)."""


@dataclasses.dataclass(frozen=True)
class LaptopRun:
    """One laptop-profile execution of a notebook, as ``LAPTOP_JSON`` records it."""
    notebook: str                      # relative to notebooks/source, e.g. "04_training/04_training_algorithm1.ipynb"
    date: str                          # UTC
    cpu: str                           # /proc/cpuinfo's model name
    cores: int                         # the CPU threads the kernel's PyTorch used (OMP_NUM_THREADS, else all)
    precision: str                     # "bf16" or "fp32", from the training cell's own "precision: ..." line
    precision_line: str                # that line
    amp_env: str | None                # DDPM_AMP in the kernel's environment, if set
    seconds: float                     # the whole notebook, wall time
    kernel_cpu_seconds: float          # the kernel process's CPU time (user + system), all threads
    load_average_start_end: tuple[float, float]
    nice: int                          # the run's scheduling niceness (negative: it had priority on a shared machine)
    cell_seconds: dict[str, float]     # every code cell's wall time, by cell id
    cell_sources: dict[str, str]       # source_hash of each laptop-output cell as it ran
    code: str                          # the commit it ran on, and the course files that differed from it
    profile: str = ""                  # PROFILES["laptop"].describe() when it ran: steps, batches, width, samples

    @property
    def minutes(self) -> float:
        return self.seconds / 60

    @classmethod
    def from_json(cls, d: dict) -> "LaptopRun":
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING} - set(d)
        if missing:
            raise LaptopOutputError(f"{LAPTOP_JSON.name}: the record of {d.get('notebook', '?')} lacks {sorted(missing)}")
        return cls(**{k: (tuple(v) if k == "load_average_start_end" else v) for k, v in d.items() if k in fields})


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def laptop_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and LAPTOP_TAG in c.metadata.get("tags", [])]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def label(run: LaptopRun, cell_id: str) -> str:
    """The line that opens a laptop-output cell's stored outputs."""
    precision = "bf16 autocast" if run.precision == "bf16" else "fp32"
    cell = run.cell_seconds.get(cell_id)
    this = f", this cell {_duration(cell)}" if cell is not None and cell >= 1 else ""
    busy = (", on a machine busy with other work" if run.load_average_start_end[0] > BUSY_LOAD * run.cores else "")
    return (f"{LABEL_START}{run.cores} cores ({run.cpu}, {precision}{busy}): the whole notebook took "
            f"{run.minutes:.1f} min{this}. Its output is stored here to show what to expect; yours replaces it "
            f"when you run the cell.")


def label_output(run: LaptopRun, cell_id: str):
    text = label(run, cell_id)
    return nbformat.v4.new_output("display_data", data={"text/markdown": f"*{text}*", "text/plain": text})


def is_label(out) -> bool:
    return out.get("output_type") == "display_data" and out.get("data", {}).get("text/plain", "").startswith(LABEL_START)


def has_laptop_run(cell) -> bool:
    """The cell's stored outputs are a laptop run's: its first output is a label."""
    return bool(cell.get("outputs")) and is_label(cell.outputs[0])


def ensure_ignored(cell) -> None:
    tags = cell.metadata.setdefault("tags", [])
    if IGNORE_TAG not in tags:
        tags.insert(0, IGNORE_TAG)


def keep_laptop_outputs(fresh, stored) -> tuple[list[str], list[str]]:
    """After a smoke execution: give each laptop-output cell of ``fresh`` the laptop outputs ``stored`` holds for it
    (the same cell id).  Returns (the ids kept, the ids that have no laptop run stored: they keep the smoke output)."""
    before = {c.get("id"): c for c in stored.cells}
    kept, missing = [], []
    for cell in laptop_cells(fresh):
        ensure_ignored(cell)
        old = before.get(cell.get("id"))
        if old is not None and has_laptop_run(old):
            cell.outputs = [nbformat.from_dict(o) for o in old.outputs]
            cell.execution_count = old.get("execution_count")
            kept.append(cell.get("id"))
        else:
            missing.append(cell.get("id"))
    return kept, missing


def stale_cells(nb, run: LaptopRun) -> list[str]:
    """The laptop-output cells whose code changed since ``run`` (their stored outputs may no longer be its own)."""
    return [c.get("id") for c in laptop_cells(nb) if run.cell_sources.get(c.get("id")) != source_hash(c.source)]


def store_laptop_outputs(target, executed, run: LaptopRun) -> list[str]:
    """Put the outputs of ``executed`` (the notebook run in the laptop profile, outputs already shrunk) into the
    laptop-output cells of ``target`` (the notebook as it is on disk now), each after its label.  Only those
    cells' outputs, execution counts and tags change.  Returns the ids stored."""
    ran = {c.get("id"): c for c in executed.cells}
    cells = laptop_cells(target)
    if not cells:
        raise LaptopOutputError(f"{run.notebook} has no cell tagged {LAPTOP_TAG!r}: nothing to store")
    for cell in cells:
        cid = cell.get("id")
        if cid not in ran:
            raise LaptopOutputError(f"{run.notebook}: cell {cid} is not in the executed notebook")
        if source_hash(cell.source) != run.cell_sources.get(cid):
            raise LaptopOutputError(f"{run.notebook}: cell {cid} was edited while the laptop run ran; run it again")
        errors = [o for o in ran[cid].outputs if o.get("output_type") == "error"]
        if errors:
            raise LaptopOutputError(f"{run.notebook}: cell {cid} raised {errors[0].get('ename')}: "
                                    f"{errors[0].get('evalue', '')[:200]}; nothing stored")
    for cell in cells:
        cid = cell.get("id")
        cell.outputs = [label_output(run, cid)] + [nbformat.from_dict(o) for o in ran[cid].outputs]
        cell.execution_count = ran[cid].get("execution_count")   # nbval refuses a cell with outputs and no count
        ensure_ignored(cell)
    return [c.get("id") for c in cells]


def precision_of(nb) -> tuple[str, str]:
    """("bf16" or "fp32", the line) from the training cell's "precision: ..." line of an executed notebook."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            for line in out.get("text", "").splitlines():
                if line.startswith("precision: "):
                    return ("bf16" if line.startswith("precision: bf16") else "fp32"), line
    raise LaptopOutputError("the executed notebook printed no 'precision: ...' line (its training cell's "
                            "recipe.precision(device)): cannot say which precision the run used")


def read_runs(path: Path = LAPTOP_JSON) -> dict[str, LaptopRun]:
    if not path.is_file():
        return {}
    d = json.loads(path.read_text())
    return {k: LaptopRun.from_json(v) for k, v in d.get("notebooks", {}).items()}


def write_run(run: LaptopRun, path: Path = LAPTOP_JSON) -> None:
    d = json.loads(path.read_text()) if path.is_file() else {}
    d.setdefault("about", "Laptop-profile runs whose outputs the cells tagged laptop-output store "
                          "(tools/laptop_outputs.py, written by tools/notebook_outputs.py --profile laptop).")
    d.setdefault("notebooks", {})[run.notebook] = dataclasses.asdict(run)
    path.write_text(json.dumps(d, indent=1, ensure_ascii=False) + "\n")
