"""What a sweep shows while it runs: a bar per pack and one for the sweep, or plain lines in a log.

The training loop reports every step (counted on the host, no device sync),
so the bars move from the first step and the ETA shows within seconds. Rates
under 10 steps/s keep a decimal. The sweep's ETA starts from the plan's
estimate and is corrected by how fast the finished runs went against their
estimates. When stdout is not a terminal (a log file, a SLURM job), one plain
progress line is printed every ``interval`` seconds instead of bars.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.runner.spec import RunSpec

__all__ = ["SweepProgress", "format_rate", "format_duration"]


def format_rate(steps_per_second: float) -> str:
    """``"0.4 steps/s"``, ``"3.1 steps/s"``, ``"27 steps/s"``, ``"1,204 steps/s"``."""
    if steps_per_second < 10:
        return f"{steps_per_second:.1f} steps/s"
    return f"{steps_per_second:,.0f} steps/s"


def format_duration(seconds: float | None) -> str:
    """A duration as ``1h05m``, ``3m07s`` or ``42s``; ``-`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class SweepProgress:
    """Progress of one sweep: ``start_pack``, ``on_progress`` every step, ``end_pack``, ``run_done``."""

    def __init__(
        self, console: Console, todo: Sequence[RunSpec], estimates: dict[str, float], interval: float
    ):
        self.console = console
        self.interval = interval
        self.total_runs = len(todo)
        self.estimates = dict(estimates)
        self.remaining = {s.run_id: self.estimates.get(s.run_id) for s in todo}
        self.done_runs = 0
        self.spent = 0.0  # wall seconds of finished runs
        self.estimated_spent = 0.0  # their estimates
        self.tty = console.is_terminal
        self._bars: Progress | None = None
        self._pack: list[RunSpec] = []
        self._last_print = 0.0

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> SweepProgress:
        if self.tty:
            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA {task.fields[eta]}"),
                console=self.console,
                transient=False,
            )
            self._bars.start()
            if self.total_runs:  # `vaebench eval` shows only its evaluation
                self._sweep_task = self._bars.add_task(
                    "sweep", total=self.total_runs, rate="", eta=format_duration(self._sweep_eta(0.0))
                )
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the progress bars (on a terminal)."""
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    # -- a pack ------------------------------------------------------------------
    def start_pack(self, pack: Sequence[RunSpec], start_steps: Sequence[int]) -> None:
        """Start showing a pack; a run resuming from a checkpoint is said once."""
        self._pack = list(pack)
        self._steps = pack[0].training.steps
        self._start_steps = list(start_steps)
        self._done = list(start_steps)
        self._started = time.perf_counter()
        self._last_print = self._started
        for spec, start in zip(pack, start_steps):
            if start > 0:
                self.console.print(f"{spec.run_id} {spec.label()}: resumed at step {start} of {self._steps}")
        label = pack[0].label() if len(pack) == 1 else f"pack of {len(pack)} ({pack[0].model}, ...)"
        self._label = label
        if self._bars is not None:
            self._run_task = self._bars.add_task(
                label, total=self._steps, completed=min(start_steps), rate="", eta="-"
            )

    def on_progress(self, index: int, done: int, total: int) -> None:
        """Member ``index`` is at step ``done`` of ``total``: update the bars, or print now and then."""
        self._done[index] = done
        now = time.perf_counter()
        slowest = min(self._done)
        trained = slowest - min(self._start_steps)
        elapsed = now - self._started
        rate = trained / elapsed if elapsed > 0 and trained > 0 else None
        eta = (total - slowest) / rate if rate else None
        if self._bars is not None:
            self._bars.update(
                self._run_task,
                completed=slowest,
                rate=format_rate(rate) if rate else "",
                eta=format_duration(eta),
            )
            self._bars.update(self._sweep_task, eta=format_duration(self._sweep_eta(elapsed)))
        elif now - self._last_print >= self.interval:
            self._last_print = now
            rate_text = format_rate(rate) if rate else "-"
            self.console.print(
                f"[{time.strftime('%H:%M:%S')}] {self._label}: step {slowest}/{total} "
                f"({100 * slowest / total:.0f}%), {rate_text}, ETA {format_duration(eta)}; "
                f"sweep {self.done_runs}/{self.total_runs} runs done, "
                f"ETA {format_duration(self._sweep_eta(elapsed))}",
                highlight=False,
            )

    def end_pack(self) -> None:
        """Remove the finished pack's bar."""
        if self._bars is not None:
            self._bars.remove_task(self._run_task)

    # -- a run's evaluation --------------------------------------------------------
    def start_evaluation(self, spec: RunSpec, costs: dict[str, float] | None = None) -> None:
        """A run's scoring begins: a bar (or plain lines) with the current metric and an ETA.

        ``costs``: the estimated seconds of each metric entry (``estimate.evaluation_costs``), from
        which the ETA is computed, corrected by how the metrics done so far went against theirs.
        """
        self._eval_label = f"{spec.label()}: evaluating"
        self._eval_started = time.perf_counter()
        self._eval_last_print = 0.0
        self._eval_costs = dict(costs or {})
        self._eval_state = ("", 0, len(spec.metrics), self._eval_started)  # entry, done, total, since
        if self._bars is not None:
            self._eval_task = self._bars.add_task(self._eval_label, total=1, rate="", eta="-")
        self._ticker = _Ticker(self.interval, self._tick)

    def _eval_eta(self, now: float) -> float | None:
        """Seconds left: the estimates of the metrics not done, scaled by actual/estimated of those done."""
        entry, done, total, since = self._eval_state
        entries = list(self._eval_costs)
        if not entries:  # no estimates: the metrics left take as long on average as those done
            elapsed = now - self._eval_started
            return elapsed / done * (total - done) if done else None
        spent = since - self._eval_started
        estimated_done = sum(self._eval_costs[e] for e in entries[:done])
        correction = spent / estimated_done if estimated_done > 1.0 and done else 1.0
        current = max(self._eval_costs.get(entry, 0.0) * correction - (now - since), 0.0)
        left = sum(self._eval_costs[e] for e in entries[done + 1 :]) + self._eval_costs.get("", 0.0)
        return current + left * correction

    def on_metric(self, done: int, total: int, entry: str) -> None:
        """Metric ``entry`` starts; ``done`` of ``total`` are finished."""
        now = time.perf_counter()
        self._eval_state = (entry, done, total, now)
        self._show_evaluation(now, force=done == 0)

    def _tick(self) -> None:
        """Every ``interval`` during a long metric: the same line again, its ETA counting down."""
        self._show_evaluation(time.perf_counter(), force=True)

    def _show_evaluation(self, now: float, force: bool) -> None:
        entry, done, total, _ = self._eval_state
        eta = self._eval_eta(now)
        elapsed = now - self._eval_started
        if self._bars is not None:
            self._bars.update(
                self._eval_task,
                description=f"{self._eval_label} {entry}",
                total=total,
                completed=done,
                rate=f"{done}/{total} metrics",
                eta=format_duration(eta),
            )
        elif force or now - self._eval_last_print >= self.interval:
            self._eval_last_print = now
            self.console.print(
                f"[{time.strftime('%H:%M:%S')}] {self._eval_label}: {entry} ({done} of {total} metrics "
                f"done, {format_duration(elapsed)} so far, ETA {format_duration(eta)})",
                highlight=False,
            )

    def end_evaluation(self) -> None:
        """The run's scoring ended: its bar (and its ticker) go."""
        self._ticker.stop()
        if self._bars is not None:
            self._bars.remove_task(self._eval_task)

    def run_done(self, spec: RunSpec, record) -> None:
        """Count a finished run and refine the sweep's ETA with its actual time against its estimate."""
        self.done_runs += 1
        timing = record.timing or {}
        actual = float(timing.get("train_seconds", 0.0)) + float(timing.get("eval_seconds", 0.0))
        estimate = self.remaining.pop(spec.run_id, None)
        if estimate and actual:
            self.spent += actual
            self.estimated_spent += estimate
        if self._bars is not None:
            self._bars.update(self._sweep_task, advance=1, eta=format_duration(self._sweep_eta(0.0)))

    # -- the sweep's ETA ---------------------------------------------------------------
    def _sweep_eta(self, elapsed_in_pack: float) -> float | None:
        """Estimates of the runs still to finish, scaled by actual/estimated of those finished."""
        left = [e for e in self.remaining.values() if e is not None]
        if not left:
            return None
        correction = self.spent / self.estimated_spent if self.estimated_spent > 0 else 1.0
        pack_ids = {s.run_id for s in self._pack}
        pack_estimate = max((self.remaining.get(i) or 0.0 for i in pack_ids), default=0.0)
        others = sum(e for i, e in self.remaining.items() if e is not None and i not in pack_ids)
        current = max(pack_estimate * correction - elapsed_in_pack, 0.0)
        return others * correction + current


class _Ticker:
    """Calls ``tick`` every ``interval`` seconds on a daemon thread until ``stop`` (none for interval 0)."""

    def __init__(self, interval: float, tick: Callable[[], None]):
        self._stopped = threading.Event()
        self._thread = None
        if interval > 0:
            self._thread = threading.Thread(target=self._run, args=(interval, tick), daemon=True)
            self._thread.start()

    def _run(self, interval: float, tick: Callable[[], None]) -> None:
        while not self._stopped.wait(interval):
            tick()

    def stop(self) -> None:
        """Stop ticking (and wait for a tick under way)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
