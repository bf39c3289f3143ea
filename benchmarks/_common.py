"""What several benchmarks share: the seeded LFW sample (or a SKIP when LFW is absent), the load average and CPU
time they report, and the clip writer (the tests' `tests.video_fixtures.write_video`, so that a benchmark's clip
and a test's are written by the same code).

The benchmarks run as scripts (`.venv/bin/python benchmarks/NAME.py`), so this directory is on `sys.path` and
they import it as `_common`; importing it puts the checkout's root there too, for `tests.*`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from facelens.eval.dataset import Dataset, lfw_root  # noqa: E402
from tests.video_fixtures import write_video  # noqa: E402

__all__ = ["ROOT", "cpu_seconds", "lfw_sample", "load_average", "write_video"]


def lfw_sample(dataset: str | None, count: int) -> list[Path] | None:
    """`count` distinct image files of LFW (at `dataset`, else `lfw_root()`), chosen with seed 0; None, after
    printing a SKIP line, when the folder is absent."""
    root = Path(dataset) if dataset else lfw_root()
    if not root.is_dir():
        print(f"SKIP: LFW not found at {root}")
        return None
    paths = Dataset.from_folder(root).paths
    return [paths[i] for i in np.random.default_rng(0).choice(len(paths), count, replace=False)]


def load_average() -> str:
    """The 1, 5 and 15 min load averages, as "0.52 0.61 0.70"."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds() -> float:
    """User plus system CPU seconds this process has used (all its threads)."""
    times = os.times()
    return times.user + times.system


def memory_mib(pid: int | str = "self") -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB: resident now, and the most it has been resident."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def tree_mib(path: Path) -> float:
    """Bytes on disk of every file under `path`, in MiB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
