#!/usr/bin/env bash
# The GPU checks in one call (throughput, a profiled packed step, tests/gpu, the quick suite on CUDA),
# <= 8 minutes on one H200; everything goes under $OUT.
#
#   OUT=/some/dir bash tools/perf/gpu_check.sh            # on the GPU machine, from the checkout
#   OUT=/tmp/gpuout bash tools/perf/gpu_check.sh --dry-run  # anywhere: every step, tiny, on the CPU
#
# Stages (each under its own time limit, so one that hangs cannot eat the others' time; each writes
# its log to $OUT/logs/<stage>.log and its rc to $OUT/logs/rc.txt):
#   throughput  python -m tools.perf.train_throughput: the DataLoader baseline, the single-model path
#               (train_run) in both precisions, packed train_runs at N = 1, 6, 36, 144, 288 (a pack
#               that does not fit is recorded as failed), a few step variants (CUDA graph, TF32)
#   profile     torch.profiler over one step of a pack of 36 (top kernels by device time)
#   tests       tests/gpu (pytest -m gpu): packed = alone, same seed = same numbers, bf16 ~ fp32,
#               graph/compile = eager, resume across devices; measured spreads in gpu_tests.jsonl
#   quick       `vaebench run --suite quick --device cuda`: training and evaluation wall time, images/s
#   report      results/perf/train_<gpu>.json and .md under $OUT, with single_vs_baseline and
#               packed_aggregate_images_per_s at the top level, plus the other stages' numbers
#
# The device machine has no filelock (benchmarks/datasets/storage.py and benchmarks/runner/claims.py
# import it at module level): when `import filelock` fails, a stand-in with the same locking
# (fcntl.flock) is put on PYTHONPATH for this script only, and the report says so.
set -uo pipefail

DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $arg (use --dry-run or --help)" >&2; exit 2 ;;
    esac
done
if [ -z "${OUT:-}" ]; then
    echo "gpu_check.sh: set OUT to the directory the results go to" >&2
    exit 2
fi

cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
PY=${PYTHON:-python}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}  # deterministic cuBLAS for tests/gpu
mkdir -p "$OUT/logs" "$OUT/results/perf" "$OUT/tests"
LOGS="$OUT/logs"
: >"$LOGS/rc.txt"
STARTED=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-470}  # all stages together; the machine grants 8 minutes a call

say() { echo "[gpu_check $(($(date +%s) - STARTED))s] $*"; }

# -- where we are ----------------------------------------------------------------------------------
BLOCKER=""
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    # As on the device machine: numba, filelock and submitit cannot be imported from site-packages.
    BLOCKER=$(mktemp -d)
    cat >"$BLOCKER/sitecustomize.py" <<'PY'
"""gpu_check.sh --dry-run: hide the installed numba, filelock and submitit, as the device machine lacks them."""
import sys
from importlib.machinery import PathFinder


class _HideInstalled:
    NAMES = ("numba", "filelock", "submitit")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in self.NAMES:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is not None and "-packages" in str(spec.origin or spec.submodule_search_locations):
            raise ImportError(f"{name} is hidden by gpu_check.sh --dry-run (absent on the device machine)")
        return spec


sys.meta_path.insert(0, _HideInstalled())
PY
    export PYTHONPATH="$BLOCKER:$PYTHONPATH"
    say "dry run: every stage on the CPU at tiny sizes, numba/filelock/submitit hidden"
else
    DEVICE=cuda
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "gpu_check.sh: torch sees no CUDA device (torch.cuda.is_available() is False); nothing run." \
            "Use --dry-run to rehearse on the CPU." | tee "$LOGS/no_cuda.txt" >&2
        exit 3
    fi
fi
"$PY" - >"$LOGS/environment.txt" 2>&1 <<'PY'
import importlib, os, platform, sys
import torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print("cpus", os.cpu_count(), "load", os.getloadavg())
for name in ("numpy", "scipy", "sklearn", "pandas", "typer", "rich", "h5py", "matplotlib", "filelock", "numba", "submitit"):
    try:
        module = importlib.import_module(name)
        print(f"{name:12s} {getattr(module, '__version__', 'present')}")
    except ImportError as exc:
        print(f"{name:12s} MISSING ({exc})")
PY
cat "$LOGS/environment.txt"

FILELOCK_SHIM=""
if ! "$PY" -c 'import filelock' 2>/dev/null; then
    FILELOCK_SHIM=$(mktemp -d)
    mkdir -p "$FILELOCK_SHIM/filelock"
    cat >"$FILELOCK_SHIM/filelock/__init__.py" <<'PY'
"""Stand-in for the filelock package where it is not installed (gpu_check.sh): fcntl.flock, the same
semantics as filelock's UnixFileLock for what vaebench uses (acquire(timeout, poll_interval), release,
context manager, Timeout)."""

import fcntl
import os
import time

__version__ = "gpu_check stand-in"


class Timeout(TimeoutError):
    def __init__(self, lock_file):
        super().__init__(f"The file lock '{lock_file}' could not be acquired.")
        self.lock_file = lock_file


class _Acquired:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        self.lock.release()


class FileLock:
    def __init__(self, lock_file, timeout=-1, **_ignored):
        self.lock_file, self.timeout = str(lock_file), timeout
        self._fd, self._count = None, 0

    @property
    def is_locked(self):
        return self._fd is not None

    def acquire(self, timeout=None, poll_interval=0.05, **_ignored):
        timeout = self.timeout if timeout is None else timeout
        if self._fd is None:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            start = time.monotonic()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if timeout is not None and 0 <= timeout <= time.monotonic() - start:
                        os.close(fd)
                        raise Timeout(self.lock_file) from None
                    time.sleep(poll_interval)
            self._fd = fd
        self._count += 1
        return _Acquired(self)

    def release(self, force=False):
        if self._fd is None:
            return
        self._count = 0 if force else self._count - 1
        if self._count <= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd, self._count = None, 0

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


SoftFileLock = UnixFileLock = FileLock
PY
    export PYTHONPATH="$PYTHONPATH:$FILELOCK_SHIM"  # after the checkout: a real filelock would win
    say "filelock is not installed: using the fcntl stand-in at $FILELOCK_SHIM/filelock"
fi

# -- stages ---------------------------------------------------------------------------------------
# stage NAME CAP_SECONDS COMMAND...: run under min(CAP, what is left of the budget), log and rc kept.
stage() {
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - STARTED)))
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 10 ]; then
        say "$name: skipped, ${left}s of the budget left"
        echo "$name skipped-no-time" >>"$LOGS/rc.txt"
        return 0
    fi
    say "$name: up to ${limit}s: $*"
    local t0=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    echo "$name $rc $(($(date +%s) - t0))s" >>"$LOGS/rc.txt"
    say "$name: rc $rc after $(($(date +%s) - t0))s; last lines:"
    tail -n 8 "$LOGS/$name.log" | sed 's/^/    /'
    return 0
}

if [ "$DRY_RUN" = 1 ]; then
    TT_ARGS=(--device cpu --steps 2 --repeats 1 --warmup 1 --packs 1,2 --compile off --evaluation off)
    TT_CONFIGS="baseline,single,packed"
    PROFILE_PACK=2
    TEST_ENV=(env VAEBENCH_GPU_TESTS_ON_CPU=1)
    TEST_ARGS=(-k "not compile")  # torch.compile on 2 CPU cores takes minutes; it runs on the GPU
    QUICK_ARGS=(--device cpu --steps 3 --models vae,factor_vae --metrics mig,sap)
else
    TT_ARGS=(--device cuda --steps 100 --repeats 3 --warmup 20 --packs 1,6,36,144,288 --compile off
        --evaluation off)
    TT_CONFIGS="baseline,single,packed,step:fp32 fused-adam,step:tf32 fused-adam,step:bf16 cuda-graph"
    PROFILE_PACK=36
    TEST_ENV=(env)
    TEST_ARGS=()
    QUICK_ARGS=(--device cuda)
    export VAEBENCH_DATA=${VAEBENCH_DATA:-/tmp/vaebench-data}  # dSprites is generated here (~400 MB)
fi

stage throughput 150 "$PY" -m tools.perf.train_throughput "${TT_ARGS[@]}" --configs "$TT_CONFIGS" \
    --out "$OUT/throughput"
stage profile 45 "$PY" -m tools.perf.train_throughput --device "$DEVICE" --profile-pack "$PROFILE_PACK" \
    --out "$OUT/profile"
stage tests 150 "${TEST_ENV[@]}" VAEBENCH_GPU_REPORT="$OUT/tests" "$PY" -m pytest -m gpu tests/gpu -rs -q \
    -p no:cacheprovider --durations=15 "${TEST_ARGS[@]}" --junitxml "$OUT/tests/junit.xml"
stage quick 170 "$PY" -m benchmarks.cli run --suite quick "${QUICK_ARGS[@]}" --out "$OUT/quick" \
    --progress-interval 10

# -- the report -----------------------------------------------------------------------------------
FILELOCK_SHIM="$FILELOCK_SHIM" DRY_RUN="$DRY_RUN" "$PY" - "$OUT" <<'PY' 2>&1 | tee "$LOGS/report.log"
"""Merge the stages into results/perf/train_<device>.json and .md (under $OUT)."""
import glob
import json
import os
import sys
from pathlib import Path

out = Path(sys.argv[1])
found = sorted((out / "throughput").glob("train_*.json"))
if not found:
    print("no throughput report: see logs/throughput.log")
    report = {"benchmark": "train_throughput", "device": "cpu" if os.environ["DRY_RUN"] == "1" else "gpu",
              "single_vs_baseline": None, "packed_aggregate_images_per_s": None, "configurations": {}}
    md = "# Training throughput\n\nThe throughput stage wrote nothing; see logs/throughput.log.\n"
else:
    report = json.loads(found[0].read_text())
    md = found[0].with_suffix(".md").read_text()
report["gpu_check"] = {
    "dry_run": os.environ["DRY_RUN"] == "1",
    "filelock": "fcntl stand-in (filelock not installed)" if os.environ["FILELOCK_SHIM"] else "installed",
    "stages": [line.split() for line in (out / "logs" / "rc.txt").read_text().splitlines() if line],
}
sections = ["", "## gpu_check.sh", "", "| stage | rc | wall |", "|---|---:|---:|"]
sections += [f"| {' | '.join((row + ['', ''])[:3])} |" for row in report["gpu_check"]["stages"]]
sections += ["", f"filelock: {report['gpu_check']['filelock']}.", ""]

# One packed step, profiled.
profiles = sorted((out / "profile").glob("profile_*.json"))
if profiles:
    prof = json.loads(profiles[0].read_text())
    report["profile_packed_step"] = {k: v for k, v in prof.items() if k not in ("table", "machine")}
    sections += [f"## One step of a pack of {prof['pack']}, profiled ({prof['time_basis']})", "",
                 "| op / kernel | self us | share | calls |", "|---|---:|---:|---:|"]
    sections += [f"| `{r['name'][:90]}` | {r['self_us']:.0f} | {r['share']:.1%} | {r['calls']} |"
                 for r in prof["top"][:15]]
    sections.append("")

# tests/gpu: outcome and the measured spreads.
tests = {"measurements": []}
jsonl = out / "tests" / "gpu_tests.jsonl"
if jsonl.exists():
    tests["measurements"] = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
junit = out / "tests" / "junit.xml"
if junit.exists():
    import xml.etree.ElementTree as ET
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    tests["summary"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    tests["cases"] = []
    for case in suite.iter("testcase"):
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = child.tag + ": " + (child.get("message") or "")[:300]
        tests["cases"].append({"name": case.get("name"), "seconds": float(case.get("time", 0)), "status": status})
report["gpu_tests"] = tests
if "summary" in tests:
    s = tests["summary"]
    sections += ["## tests/gpu", "",
                 f"{s['tests']} tests: {s['failures']} failed, {s['errors']} errors, {s['skipped']} skipped.", "",
                 "| test | s | outcome |", "|---|---:|---|"]
    sections += [f"| {c['name']} | {c['seconds']:.1f} | {c['status'].replace('|', '/')[:160]} |"
                 for c in tests["cases"]]
    sections += ["", "Measured (gpu_tests.jsonl):", ""]
    sections += [f"- `{json.dumps(m)[:300]}`" for m in tests["measurements"]]
    sections.append("")

# The quick suite through the CLI.
records = []
for path in glob.glob(str(out / "quick" / "**" / "*.json"), recursive=True):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        continue
    if isinstance(data, dict) and "timing" in data and "spec" in data:
        records.append(data)
if records:
    rows = [{"run_id": r["run_id"], "model": r["spec"]["model"], "status": r.get("status"),
             **{k: r["timing"].get(k) for k in ("train_seconds", "eval_seconds", "images_per_second")}}
            for r in records]
    quick = {
        "runs": rows,
        "train_seconds_sum": sum(r["train_seconds"] or 0 for r in rows),
        "eval_seconds_sum": sum(r["eval_seconds"] or 0 for r in rows),
        "images_per_second_sum": sum(r["images_per_second"] or 0 for r in rows),
    }
    rc = {row[0]: row[1:] for row in report["gpu_check"]["stages"]}
    quick["cli_wall"] = rc.get("quick", ["", ""])[1] if len(rc.get("quick", [])) > 1 else None
    report["quick_suite"] = quick
    sections += ["## `vaebench run --suite quick`", "",
                 f"Wall time of the command {quick['cli_wall']}; training {quick['train_seconds_sum']:.1f} s "
                 f"and evaluation {quick['eval_seconds_sum']:.1f} s summed over the runs (runs of one pack "
                 "share their training wall time; images/s summed over a pack is its aggregate).", "",
                 "| run | status | train s | eval s | images/s |", "|---|---|---:|---:|---:|"]
    sections += [f"| {r['run_id']} | {r['status']} | {r['train_seconds'] or 0:.1f} | {r['eval_seconds'] or 0:.1f} | "
                 f"{r['images_per_second'] or 0:.0f} |" for r in rows]
    sections.append("")
else:
    report["quick_suite"] = {"error": "no run records under quick/; see logs/quick.log"}
    sections += ["## `vaebench run --suite quick`", "", "No run records; see logs/quick.log.", ""]

name = f"train_{report['device']}"
target = out / "results" / "perf"
target.mkdir(parents=True, exist_ok=True)
(target / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
(target / f"{name}.md").write_text(md.rstrip("\n") + "\n" + "\n".join(sections) + "\n")
print(f"wrote {target / name}.json and .md")
print(f"single_vs_baseline {report.get('single_vs_baseline')}; "
      f"packed_aggregate_images_per_s {report.get('packed_aggregate_images_per_s')}")
PY
say "done; stages:"
cat "$LOGS/rc.txt"
rm -rf ${FILELOCK_SHIM:+"$FILELOCK_SHIM"} ${BLOCKER:+"$BLOCKER"}
exit 0
