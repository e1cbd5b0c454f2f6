"""Provenance: where and with what a result was made (machine, CPU model, git state, library versions).

Every record carries two: ``run_provenance`` for its training (code, libraries,
machine, device, precision, dataset) and ``evaluation_provenance`` for its
evaluation (code, libraries, device, date), which differ once `vaebench eval`
re-scores a run with newer code. ``machine()`` is the description of the host
that the speed reports (``tools/perf``) print beside their timings.
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy
import scipy
import sklearn
import torch
from threadpoolctl import threadpool_info

import vaebench

__all__ = [
    "cpu_model",
    "usable_cores",
    "git_state",
    "library_versions",
    "machine",
    "code_provenance",
    "run_provenance",
    "evaluation_provenance",
]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for records and speed reports."""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        model = ""
    return model or platform.processor() or platform.machine() or "cpu"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``{"git_commit", "git_dirty"}`` of the code that runs (None where git cannot tell)."""
    # Uncommitted changes to the code: the output directory (results/, records included) does not count,
    # or every record after a sweep's first would be marked dirty by its predecessors.
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(top,exclude)results")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
    }


def library_versions() -> dict[str, str]:
    """Python's and the numerical libraries' versions, under the keys records use."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit_learn": sklearn.__version__,
    }


def blas() -> list[dict[str, Any]]:
    """The BLAS libraries numpy and scikit-learn call, with the kernel each picked for this CPU.

    From threadpoolctl: ``internal_api``, ``version``, ``architecture``. Logistic regression's lbfgs
    fits, and so the downstream task's and fairness's last digits, depend on that kernel.
    """
    found = [
        {key: info.get(key) for key in ("internal_api", "version", "architecture", "num_threads")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return sorted(found, key=lambda lib: (str(lib["internal_api"]), str(lib["version"])))  # load order varies


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity), else all of them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine(device: torch.device | None = None) -> dict[str, Any]:
    """The host's platform, CPU, cores, torch threads and GPU, as a dict for speed reports.

    Cores are counted all and usable; the GPU is given when ``device`` is a CUDA device. Records keep
    the same facts in their provenance.
    """
    usable = usable_cores()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "torch_threads": torch.get_num_threads(),
        "blas": blas(),
        **library_versions(),
    }
    if device is not None and device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def code_provenance() -> dict[str, Any]:
    """The code's version (package, git commit, uncommitted changes), the libraries' and the date."""
    return {"vaebench": vaebench.__version__, **git_state(), **library_versions(), "created": _now()}


def run_provenance(device: str, device_name: str, precision: str, dataset: dict[str, Any]) -> dict[str, Any]:
    """A trained run's provenance: code and library versions, machine, device, precision, data source."""
    return {
        **code_provenance(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "blas": blas(),
        "device": device,
        "device_name": device_name,
        "precision": precision,
        "dataset": dataset,
    }


def evaluation_provenance(
    device: str, device_name: str, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An evaluation's own provenance: the code and libraries that scored, on which device, when, how.

    ``options``: ``evaluate.EvaluationOptions.to_dict()``, how it ran (threads of the fits, the
    encoder's memory format). ``torch_threads``: the encoding's, on which a CPU's codes can depend.
    """
    out = {
        **code_provenance(),
        "blas": blas(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": device_name,
    }
    if options is not None:
        out["options"] = options
    return out
