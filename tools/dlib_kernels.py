"""Re-run disentanglement_lib's downstream task and fairness on the fixture cases under this BLAS kernel.

The fixtures in tests/data/dlib/extra were made under one OpenBLAS kernel
(SkylakeX). OpenBLAS picks its kernel by CPU, and dlib's logistic regression
(lbfgs, stopped unconverged at 100 iterations) and the representations' matrix
products round differently under another one. This script runs dlib's own code,
unmodified, on every downstream-task and fairness case of the fixtures, with the
fixtures' protocol, and writes what dlib returned under the running kernel to
``tests/data/dlib/extra/kernels/<kernel>.json``. The parity tests compare with
the file of the kernel they run under.

It runs in an environment with dlib's dependencies, not the project's (see
tests/data/dlib/extra/README.md: numpy 2.4.6, scipy 1.17.1, scikit-learn 1.9.1,
gin-config 0.5.0, absl-py, six, threadpoolctl), one thread, one process per
kernel::

    git -C <dlib mirror> archive HEAD disentanglement_lib | tar -x -C /tmp/dlib_src
    OPENBLAS_CORETYPE=Haswell OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        /tmp/dlibvenv/bin/python tools/dlib_kernels.py --dlib-src /tmp/dlib_src

Nothing of dlib is copied here: its modules are imported from ``--dlib-src``;
``gin.tf`` is replaced by an empty module (the metric modules import it only to
get the name ``gin``), and gin-config >= 0.4's renamed keyword ``blacklist`` is
passed on as ``denylist``, as when the fixtures were made.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

EXTRA = Path(__file__).resolve().parents[1] / "tests" / "data" / "dlib" / "extra"
METRICS = ("downstream_task__", "fairness__")


def blas_kernel() -> str:
    """The running OpenBLAS kernel (threadpoolctl's ``architecture``), or the library's name."""
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    kernels = sorted({lib.get("architecture") or lib["internal_api"] for lib in blas})
    if len(kernels) != 1:
        raise SystemExit(f"expected one BLAS kernel, found {kernels}")
    return kernels[0]


def load_dlib(src: Path):
    """dlib's downstream_task and fairness modules, imported from src unmodified."""
    import gin

    sys.modules["gin.tf"] = types.ModuleType("gin.tf")
    gin.tf = sys.modules["gin.tf"]
    configurable = gin.configurable

    def renamed(*args, **kwargs):
        if "blacklist" in kwargs:
            kwargs["denylist"] = kwargs.pop("blacklist")
        return configurable(*args, **kwargs)

    gin.configurable = renamed
    sys.path.insert(0, str(src))
    prefix = "disentanglement_lib.evaluation.metrics."
    return gin, {m: importlib.import_module(prefix + m) for m in ("downstream_task", "fairness")}


class Grid:
    """The fixtures' GroundTruthData (their ``dataset_spec``): observation = factors / (K - 1)."""

    def __init__(self, factor_sizes):
        self.factor_sizes = list(factor_sizes)
        self.num_factors = len(factor_sizes)
        self.factors_num_values = list(factor_sizes)
        self.observation_shape = [len(factor_sizes)]

    def sample_factors(self, num, random_state):
        """``num`` factor vectors, factor by factor (dlib's order of draws)."""
        factors = np.zeros((num, self.num_factors), dtype=np.int64)
        for i, k in enumerate(self.factor_sizes):
            factors[:, i] = random_state.randint(k, size=num)
        return factors

    def sample_observations_from_factors(self, factors, random_state):
        """factors / (K - 1); ``random_state`` unused."""
        return factors / (np.asarray(self.factor_sizes) - 1.0)

    def sample(self, num, random_state):
        """Factors, then their observations (dlib's base class)."""
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num, random_state):
        """Observations only (dlib's base class)."""
        return self.sample(num, random_state)[1]


def representation(name: str, layout: str):
    """The fixtures' representation table (tests/data/dlib/extra/README.md), from their npz arrays."""
    z = np.load(EXTRA / f"representations_{layout}.npz")

    def noise(x, key):
        return np.sqrt(2.0) * np.sin(x @ z[f"{key}/W"] + z[f"{key}/b"])

    return {
        "identity": lambda x: x,
        "identity_noise": lambda x: x + 0.1 * noise(x, "identity_noise"),
        "rotation": lambda x: (x - 0.5) @ z["rotation/R"].T,
        "collapsed": lambda x: x * z["collapsed/mask"][None, :],
        "pure_noise": lambda x: noise(x, "pure_noise"),
        "duplicated": lambda x: np.concatenate([x, x], axis=1),
        "zeros": lambda x: np.zeros_like(x),
    }[name]


def plain(value):
    """A float, or the string "nan"/"inf"/"-inf" (the fixtures' JSON convention)."""
    return float(value) if np.isfinite(value) else str(float(value))


def run_case(gin, modules, case: str) -> dict:
    """Every seed of ``case`` through dlib, with the fixtures' protocol: seed -> scores and seconds."""
    spec = json.loads((EXTRA / f"{case}.json").read_text())
    metric, layout, _, rep = case.split("__")
    entry = {"downstream_task": "compute_downstream_task", "fairness": "compute_fairness"}[metric]
    runs = {}
    for seed in spec["seeds"]:
        gin.clear_config()
        gin.parse_config(spec["gin_bindings"])
        np.random.seed(seed)  # noqa: NPY002  (dlib's trees draw from numpy's global RNG)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = getattr(modules[metric], entry)(
                Grid(spec["factor_sizes"]), representation(rep, layout), np.random.RandomState(seed)
            )
        runs[str(seed)] = {
            "scores": {k: plain(v) for k, v in scores.items()},
            "seconds": round(time.perf_counter() - start, 3),
        }
    return runs


def main() -> None:
    """Run every case (or ``--cases``) and write the kernel's file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dlib-src", type=Path, required=True, help="folder holding disentanglement_lib/")
    parser.add_argument("--cases", nargs="*", help="case names (default: every downstream/fairness case)")
    parser.add_argument(
        "--out", type=Path, help="where to write (default: kernels/<kernel>.json beside the fixtures)"
    )
    args = parser.parse_args()
    gin, modules = load_dlib(args.dlib_src)
    kernel = blas_kernel()
    cases = args.cases or sorted(p.stem for p in EXTRA.glob("*.json") if p.stem.startswith(METRICS))
    out = {
        "kernel": kernel,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "cpu": platform.processor() or platform.machine(),
        "blas": [
            {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "prefix")}
            for lib in threadpool_info()
            if lib["user_api"] == "blas"
        ],
        "versions": {m: importlib.import_module(m).__version__ for m in ("numpy", "scipy", "sklearn")},
        "dlib_commit": "86a644d4ed35c771560dc3360756363d35477357",
        "cases": {},
    }
    for case in cases:
        out["cases"][case] = run_case(gin, modules, case)
        print(case, kernel, flush=True)
    target = args.out or EXTRA / "kernels" / f"{kernel}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print("wrote", target)


if __name__ == "__main__":
    main()
