#!/usr/bin/env bash
# The GPU checks in one call (throughput, a profiled packed step, tests/gpu, the quick suite on CUDA),
# <= 8 minutes on one H200; everything goes under $OUT.
#
#   OUT=/some/dir bash tools/perf/gpu_check.sh            # on the GPU machine, from the checkout
#   OUT=/tmp/gpuout bash tools/perf/gpu_check.sh --dry-run  # anywhere: every step, tiny, on the CPU
#   OUT=/some/dir bash tools/perf/gpu_check.sh --stages=eval  # only the named stages (comma-separated)
#
# Through the device tool (its README: the working tree that travels <= 64 MiB; at most 8 files come
# back from its $OUT, none more than two folders down):
#   - the checkout's tracked files are about 66 MiB, 43 of them results/artifacts, which no stage
#     reads: before the call, here, `git rm -r -q --cached results/artifacts && echo /results/artifacts/
#     >>.git/info/exclude` (the files stay on disk); after it, `git reset -q results/artifacts` and
#     drop that line from .git/info/exclude;
#   - write under a folder of the machine's own and bring back one archive (BUNDLE, set before OUT so
#     that $OUT is still the tool's): BUNDLE=$OUT/gpu_check.tar.gz OUT=/tmp/gc bash tools/perf/gpu_check.sh
#
# --stages=LIST picks stages from throughput, profile, tests, quick (the default: those four) and eval
# (not in the default: up to 460 s of its own, so a call of its own):
#   eval        the study's evaluation on a GPU node (issue 22's target: <= 30 s a model): the
#               study-eval suite (tools/perf/suites/study-eval.toml: a dlib_conv beta-VAE, 3,000 steps,
#               the study's full metric set on both representations) trained and scored by
#               `vaebench run --device cuda` (eval_train), then `python -m tools.perf.eval_cost
#               --device cuda` on its checkpoint and record (eval_cost): the per-metric and per-stage
#               seconds with the fits on every core, the paired dlib-style baseline at 5% of the
#               study's sizes, and the scores against the record; results/perf/eval_cost_cuda.*
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
#   report      python -m tools.perf.gpu_check_report: results/perf/train_<gpu>.json and .md under
#               $OUT, with single_vs_baseline and packed_aggregate_images_per_s at the top level, plus
#               the other stages' numbers
#
# The device machine had no filelock (benchmarks/datasets/cache.py and benchmarks/runner/claims.py
# import it at module level): when `import filelock` fails, the stand-in in tools/perf/stand_ins/
# (fcntl.flock, the same locking) is put on PYTHONPATH for this script only, and the report says so.
# --dry-run also puts tools/perf/stand_ins/dry_run first, which hides the installed numba, filelock
# and submitit, as the device machine lacked them (its package list of 2026-11-17, the device tool's
# KINDS.md, has numba and filelock, not submitit): the dry run rehearses the fallbacks.
set -uo pipefail

DRY_RUN=0
KNOWN_STAGES=throughput,profile,tests,quick,eval
STAGES=throughput,profile,tests,quick
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        --stages=*) STAGES=${arg#--stages=} ;;
        -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $arg (use --dry-run, --stages=LIST or --help)" >&2; exit 2 ;;
    esac
done
if [ -z "${STAGES//,/}" ]; then
    echo "gpu_check.sh: --stages= names no stage (use ${KNOWN_STAGES//,/, })" >&2
    exit 2
fi
for name in ${STAGES//,/ }; do
    if [[ ",$KNOWN_STAGES," != *",$name,"* ]]; then
        echo "gpu_check.sh: unknown stage '$name' in --stages=$STAGES (use ${KNOWN_STAGES//,/, })" >&2
        exit 2
    fi
done
wanted() { [[ ",$STAGES," == *",$1,"* ]]; }
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
STAND_INS="$ROOT/tools/perf/stand_ins"
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu
    # As on the device machine: numba, filelock and submitit cannot be imported from site-packages.
    export PYTHONPATH="$STAND_INS/dry_run:$PYTHONPATH"
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

FILELOCK_STAND_IN=()
if ! "$PY" -c 'import filelock' 2>/dev/null; then
    FILELOCK_STAND_IN=(--filelock-stand-in)
    export PYTHONPATH="$PYTHONPATH:$STAND_INS"  # after the checkout: a real filelock would win
    say "filelock is not installed: using the fcntl stand-in at $STAND_INS/filelock"
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
    EVAL_TRAIN_ARGS=(--device cpu --steps 3 --metrics mig,sap)
    EVAL_COST_ARGS=(--device cpu --fraction 0.005 --repeats 1 --workers 2 --skip-full)
else
    TT_ARGS=(--device cuda --steps 100 --repeats 3 --warmup 20 --packs 1,6,36,144,288 --compile off
        --evaluation off)
    TT_CONFIGS="baseline,single,packed,step:fp32 fused-adam,step:tf32 fused-adam,step:bf16 cuda-graph"
    PROFILE_PACK=36
    TEST_ENV=(env)
    TEST_ARGS=()
    QUICK_ARGS=(--device cuda)
    EVAL_TRAIN_ARGS=(--device cuda)
    EVAL_COST_ARGS=(--device cuda --fraction 0.05 --repeats 1 --workers "$(nproc)")
    export VAEBENCH_DATA=${VAEBENCH_DATA:-/tmp/vaebench-data}  # dSprites is generated here (~400 MB)
fi

wanted throughput && stage throughput 150 "$PY" -m tools.perf.train_throughput "${TT_ARGS[@]}" \
    --configs "$TT_CONFIGS" --out "$OUT/throughput"
wanted profile && stage profile 45 "$PY" -m tools.perf.train_throughput --device "$DEVICE" \
    --profile-pack "$PROFILE_PACK" --out "$OUT/profile"
wanted tests && stage tests 150 "${TEST_ENV[@]}" VAEBENCH_GPU_REPORT="$OUT/tests" "$PY" -m pytest -m gpu \
    tests/gpu -rs -q -p no:cacheprovider --durations=15 "${TEST_ARGS[@]}" --junitxml "$OUT/tests/junit.xml"
wanted quick && stage quick 170 "$PY" -m benchmarks.cli run --suite quick "${QUICK_ARGS[@]}" \
    --out "$OUT/quick" --progress-interval 10
if wanted eval; then
    stage eval_train 170 "$PY" -m benchmarks.cli run --suite tools/perf/suites/study-eval.toml \
        "${EVAL_TRAIN_ARGS[@]}" --out "$OUT/studyeval" --progress-interval 10
    # The run's final checkpoint and its record, if it got that far (else eval_cost scores an untrained model).
    CHECKPOINT=$(find "$OUT/studyeval/checkpoints" -name '*.pt' 2>/dev/null | sort | head -n 1)
    RECORD=$(find "$OUT/studyeval/runs" -name '*.json' 2>/dev/null | sort | head -n 1)
    [ -n "$CHECKPOINT" ] && EVAL_COST_ARGS+=(--checkpoint "$CHECKPOINT")
    [ -n "$RECORD" ] && EVAL_COST_ARGS+=(--record "$RECORD")
    stage eval_cost 290 "$PY" -m tools.perf.eval_cost "${EVAL_COST_ARGS[@]}" --out "$OUT/results/perf"
fi

# -- the report -----------------------------------------------------------------------------------
if wanted throughput || wanted profile || wanted tests || wanted quick; then
    REPORT_ARGS=("$OUT" "${FILELOCK_STAND_IN[@]}")
    [ "$DRY_RUN" = 1 ] && REPORT_ARGS+=(--dry-run)
    "$PY" -m tools.perf.gpu_check_report "${REPORT_ARGS[@]}" 2>&1 | tee "$LOGS/report.log"
fi
say "done; stages:"
cat "$LOGS/rc.txt"
# -- one file back ---------------------------------------------------------------------------------
# The device machine returns at most 8 files from its $OUT, none more than two folders down: BUNDLE
# packs everything this script wrote into one archive (checkpoints left out: tens of MB, no figure).
if [ -n "${BUNDLE:-}" ]; then
    if tar -czf "$BUNDLE" --exclude='*.pt' -C "$OUT" .; then
        say "bundle: $BUNDLE ($(du -h "$BUNDLE" | cut -f1))"
    else
        say "bundle: tar failed; the results are under $OUT"
    fi
fi
exit 0
