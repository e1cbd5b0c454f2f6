"""Speed and memory measurements, run from the repository root; their reports go to ``results/perf/``.

* ``python -m tools.perf.metrics_speed``: every metric against a straightforward dlib-style baseline.
* ``python -m tools.perf.train_throughput``: images/s of the training paths (single, packed, step
  variants) against a DataLoader baseline, and a profiled packed step.
* ``python -m tools.perf.precision_check``: bf16 autocast against fp32 in whole training runs.
* ``python -m tools.perf.memory``: peak resident memory of training and of whole suites.
* ``OUT=DIR bash tools/perf/gpu_check.sh [--dry-run] [--stages=LIST]``: the GPU checks in one call
  (``--dry-run`` rehearses every stage on the CPU at tiny sizes; ``--stages=eval``, a call of its own,
  measures the study's evaluation on the GPU node with ``eval_cost``); ``gpu_check_report`` merges
  the training stages into one report, and ``stand_ins/`` holds what it puts on ``PYTHONPATH``
  where the device machine lacks a package.
"""
