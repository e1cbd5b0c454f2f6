"""Scoring a representation trained elsewhere: ``vaebench score`` and ``vaebench.score``.

A representation comes in one of three kinds (``load_representation``):

* ``callable``: a Python function, named ``package.module:function`` or ``path/to/file.py:function``
  (or passed as an object to ``vaebench.score``). It gets a numpy float32 batch in [0, 1],
  ``(n, C, H, W)`` (``layout="channels_first"``, PyTorch's convention, the default) or
  ``(n, H, W, C)`` (``"channels_last"``, disentanglement_lib's), and returns codes ``(n, d)``, or a
  pair ``(mean, logvar)``; numpy, torch and JAX arrays are all read with ``np.asarray``. A
  function may declare its layout as an attribute (``encode.layout = "channels_last"``).
* ``torchscript``: a ``.pt`` file written by ``torch.jit.trace``/``torch.jit.script`` and ``.save``,
  loaded with ``torch.jit.load`` only (never a pickle). Its ``forward`` takes a float32 tensor in the
  same layout and returns codes or ``(mean, logvar)``.
* ``codes``: a ``.npy`` of codes ``(N, d)``, or a ``.npz`` with ``mean`` (and optionally ``logvar``),
  for **every observation of the dataset in its canonical order** (the flat index of the factor
  grid, ``dataset.grid.factors_to_indices``). Every metric is then a lookup. Such a file holds one
  code per factor combination, so it cannot be scored on a dataset whose observations are random
  given the factors (``stochastic_observations``: color/noisy/scream dSprites, smallNORB's
  instance): there the metrics draw fresh observations (fresh noise, colour, patch) that no file
  written in advance encodes. Score an encoder on those instead.

Scoring goes through the runner's own evaluation (``benchmarks.runner.evaluate.evaluate_encoder``),
with a suite's metric settings, its evaluation seed and the dataset-supplied settings (Chen et al.'s
MIG without dSprites' shape) exactly as for the zoo's runs. The metrics that need a posterior
(``posterior_grid`` metrics such as ``mig_chen``, and every ``@sampled`` entry; UDR too, which
``vaebench udr`` computes for the runner's seed groups only) need an encoder that gives
``(mean, logvar)``; for codes alone they are refused (named explicitly) or left out with a note (a
suite's list). Traversals need a decoder and are never drawn for an external representation.

Bad input raises ``ScoreError`` (a ``ValueError``; the CLI exits 2) before any metric runs:
codes of the wrong shape, dtype or length, non-finite codes, an encoder returning another number of
rows than it was given or different codes for the same batch twice, a file that is not TorchScript.

A scored representation becomes a ``RunRecord`` of kind ``external`` under
``OUT/runs/<suite>/external-<12 hex>.json``, so tables, figures, exports and analyses show it beside
the zoo's runs of that suite. Its spec names the encoder (``spec["encoder"]``: kind, source, content
hash or qualified name, layout, whether it gives a posterior), the dataset, the metric settings and
the evaluation seed; it has no training seed, training settings, curve or training time, and none is
invented. The run id hashes the encoder's identity (a file's sha256, or a callable's qualified name
and label), the dataset's content hash and the metric settings: rescoring the same encoder on the
same data is skipped as recorded, unless ``force``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.datasets import list_datasets, load_dataset, to_float
from benchmarks.runner.evaluate import CachedEncoder, evaluate_encoder, metric_entry
from benchmarks.runner.execute import external_record
from benchmarks.runner.records import read_record, record_path, write_record
from benchmarks.runner.suite import load_suite, per_run_metrics
from benchmarks.runner.train import resolve_device
from benchmarks.runner.udr import udr_points
from metrics import get_metric
from vaebench.errors import UserError
from vaebench.registry import UnknownNameError

__all__ = [
    "LAYOUTS",
    "DEFAULT_SUITE",
    "EXTERNAL_SUITE",
    "PROBE_POINTS",
    "ScoreError",
    "Representation",
    "ScoreResult",
    "load_representation",
    "metric_entries",
    "needs_posterior",
    "check_codes",
    "external_spec",
    "external_run_id",
    "score_representation",
    "score",
]

LAYOUTS = ("channels_first", "channels_last")
#: The suite `vaebench score` takes its metrics from when given neither --suite nor --metrics
#: (the runner's default suite).
DEFAULT_SUITE = "quick"
#: Where records of metrics chosen without a suite go (``runs/external/``).
EXTERNAL_SUITE = "external"
#: Observations encoded twice before scoring, to check rows, finiteness and determinism.
PROBE_POINTS = 64
#: Two encodings of one batch that differ by more than this (relative to the codes' scale) make an
#: encoder non-deterministic; well above float32 rounding, far below a posterior sample's spread.
DETERMINISM_TOLERANCE = 1e-5


class ScoreError(UserError, ValueError):
    """Bad input to scoring (an unusable encoder, codes file or metric choice); the CLI exits 2."""


@dataclass
class Representation:
    """What is scored: a live encoder (``encode``) or codes of every grid point (``mean``/``logvar``).

    ``identity`` is what the record's spec and run id say about it (kind, source, sha256 or
    qualified name, layout); ``posterior`` whether it gives ``(mean, logvar)``.
    """

    kind: str
    label: str
    identity: dict[str, Any]
    posterior: bool | None = None  # None: a live encoder not probed yet
    encoder: Any = None  # has encode(x) -> (mean, logvar | None), see benchmarks.runner.evaluate
    mean: np.ndarray | None = None
    logvar: np.ndarray | None = None


@dataclass
class ScoreResult:
    """What ``score_representation`` did.

    The scores, the record and where it is (when written), whether it was already recorded, and the
    metrics left out with why.
    """

    metrics: dict[str, float]
    record: Any
    path: Path | None = None
    skipped: bool = False
    left_out: dict[str, str] = field(default_factory=dict)


# -- arrays ------------------------------------------------------------------------------------------


def _as_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any array-like's failure is the user's to see
        raise ScoreError(f"{what} is not an array: {exc}") from None
    return array


def check_codes(array: Any, what: str, rows: int | None = None, width: int | None = None) -> np.ndarray:
    """``array`` as real-valued codes ``(rows, d)``: a floating dtype kept, integers and bools as float64.

    ScoreError names ``what`` and the problem: shape, dtype, row count, non-finite values.
    """
    array = _as_array(array, what)
    if array.dtype.kind not in "biuf":
        raise ScoreError(f"{what} has dtype {array.dtype}; codes must be real numbers (float or integer)")
    if array.ndim != 2 or array.shape[1] < 1:
        raise ScoreError(f"{what} has shape {array.shape}; codes must be 2-D, (observations, codes)")
    if rows is not None and array.shape[0] != rows:
        raise ScoreError(
            f"{what} has {array.shape[0]} rows for {rows} observations; it must give one per input"
        )
    if width is not None and array.shape[1] != width:
        raise ScoreError(f"{what} has {array.shape[1]} columns where the codes have {width}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ScoreError(
            f"{what} holds {int(bad.sum())} NaN or infinite value(s) "
            f"(first at row {int(np.argwhere(bad)[0, 0])}); every code must be finite"
        )
    return array


def _split_output(output: Any, rows: int, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """An encoder's output -> checked (mean, logvar or None)."""
    if isinstance(output, (tuple, list)):
        if len(output) != 2:
            raise ScoreError(f"{what} returned {len(output)} arrays; return codes, or (mean, logvar)")
        mean = check_codes(output[0], f"{what}'s mean", rows)
        return mean, check_codes(output[1], f"{what}'s logvar", rows, mean.shape[1])
    return check_codes(output, f"{what}'s codes", rows), None


# -- the three kinds -------------------------------------------------------------------------------------


class CallableEncoder:
    """A Python function on numpy batches as the evaluation's encoder (``encode(x) -> (mean, logvar)``)."""

    def __init__(self, function: Callable[[np.ndarray], Any], layout: str, name: str):
        self.function, self.layout, self.name = function, layout, name

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = x.detach().cpu().numpy()
        if self.layout == "channels_last":
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        mean, logvar = _split_output(self.function(batch), len(batch), f"encoder {self.name}")
        return torch.from_numpy(mean), None if logvar is None else torch.from_numpy(logvar)


class ModuleEncoder:
    """A ``torch.nn.Module`` (a TorchScript file's, say) on tensors as the evaluation's encoder."""

    def __init__(self, module: torch.nn.Module, layout: str, name: str, device: torch.device):
        self.module, self.layout, self.name = module.to(device).eval(), layout, name

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.layout == "channels_last":
            x = x.permute(0, 2, 3, 1).contiguous()
        mean, logvar = _split_output(self.module(x), len(x), f"encoder {self.name}")
        return torch.from_numpy(mean), None if logvar is None else torch.from_numpy(logvar)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _layout(layout: str | None, declared: Any = None) -> str:
    chosen = layout or declared or "channels_first"
    chosen = str(chosen).replace("-", "_")
    if chosen not in LAYOUTS:
        raise ScoreError(f"layout must be one of {', '.join(LAYOUTS)}; got {chosen!r}")
    return chosen


def _import_callable(target: str) -> tuple[Callable, str]:
    """``package.module:function`` or ``path/to/file.py:function`` -> the function and its qualified name."""
    module_name, sep, attribute = target.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ScoreError(
            f"encoder {target!r} is neither a file (.pt TorchScript, .npy/.npz codes) nor "
            "package.module:function or path/to/file.py:function"
        )
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ScoreError(f"encoder {target!r}: no Python file {path}")
        unique = "vaebench_encoder_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(unique, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
        qualified_module = path.name
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ScoreError(f"encoder {target!r}: cannot import {module_name}: {exc}") from None
        qualified_module = module_name
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ScoreError(f"encoder {target!r}: {qualified_module} has no {attribute!r}")
        value = getattr(value, part)
    if not callable(value):
        raise ScoreError(f"encoder {target!r} is not callable")
    return value, f"{qualified_module}:{attribute}"


def _load_codes(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)  # never a pickle
    except (OSError, ValueError) as exc:
        raise ScoreError(f"codes file {path} cannot be read as .npy/.npz without pickles: {exc}") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        keys = list(loaded.files)
        if "mean" in keys:
            return loaded["mean"], (loaded["logvar"] if "logvar" in keys else None)
        if len(keys) == 1:
            return loaded[keys[0]], None
    raise ScoreError(f"codes file {path} holds {', '.join(keys) or 'nothing'}; give 'mean' (and 'logvar')")


def _codes(mean: Any, logvar: Any, name: str, source: str, sha256: str) -> Representation:
    identity = {"kind": "codes", "source": source, "sha256": sha256}
    return Representation("codes", name, identity, logvar is not None, mean=mean, logvar=logvar)


def _codes_file(path: Path, name: str | None, layout: str | None, device: torch.device) -> Representation:
    mean, logvar = _load_codes(path)
    return _codes(mean, logvar, name or path.stem, path.name, _sha256(path))


def _torchscript_file(
    path: Path, name: str | None, layout: str | None, device: torch.device
) -> Representation:
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, ValueError or its own
        raise ScoreError(
            f"{path} is not a TorchScript file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "save the encoder with torch.jit.trace(...) or torch.jit.script(...) and .save(path). "
            "vaebench never unpickles a model (torch.load of a pickled nn.Module can run any code)"
        ) from None
    layout = _layout(layout)
    identity = {"kind": "torchscript", "source": path.name, "sha256": _sha256(path), "layout": layout}
    encoder = ModuleEncoder(module, layout, path.name, device)
    return Representation("torchscript", name or path.stem, identity, encoder=encoder)


#: A file's kind by its suffix; any other existing file without a colon is tried as TorchScript.
FILE_KINDS = {
    ".npy": _codes_file,
    ".npz": _codes_file,
    ".pt": _torchscript_file,
    ".pth": _torchscript_file,
    ".ts": _torchscript_file,
}


def _array_digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def load_representation(
    encoder: Any, *, name: str | None = None, layout: str | None = None, device: torch.device | str = "cpu"
) -> Representation:
    """A CLI argument (a file, or ``module:function``) or a Python object as a ``Representation``.

    Objects: a ``torch.nn.Module`` (called on tensors), any other callable (on numpy arrays), an
    array of codes or a ``(mean, logvar)`` pair of arrays of every grid point.
    """
    device = torch.device(device)
    qualified = None
    if isinstance(encoder, (str, Path)):
        text, path = str(encoder), Path(encoder)
        suffix = path.suffix.lower()
        if suffix == ".py":
            raise ScoreError(f"encoder {text!r}: name the function too, as {text}:FUNCTION")
        if suffix in FILE_KINDS or (path.is_file() and ":" not in path.name):
            if not path.is_file():
                raise ScoreError(f"no file {path}")
            return FILE_KINDS.get(suffix, _torchscript_file)(path, name, layout, device)
        encoder, qualified = _import_callable(text)
    if isinstance(encoder, np.ndarray):
        return _codes(encoder, None, name or "codes", "array", _array_digest(encoder))
    if isinstance(encoder, tuple) and len(encoder) == 2 and all(isinstance(a, np.ndarray) for a in encoder):
        return _codes(*encoder, name or "codes", "array", _array_digest(*encoder))
    if not callable(encoder):
        raise ScoreError(
            f"cannot score a {type(encoder).__name__}: give a callable, a module, a path or codes"
        )
    if qualified is None:
        qualname = getattr(encoder, "__qualname__", type(encoder).__qualname__)
        qualified = f"{getattr(encoder, '__module__', '?')}:{qualname}"
    label = name or qualified.rpartition(":")[2]
    layout = _layout(layout, getattr(encoder, "layout", None))
    identity = {"kind": "callable", "source": qualified, "label": label, "layout": layout}
    if isinstance(encoder, torch.nn.Module):
        return Representation(
            "callable", label, identity, encoder=ModuleEncoder(encoder, layout, label, device)
        )
    return Representation("callable", label, identity, encoder=CallableEncoder(encoder, layout, label))


# -- metrics -------------------------------------------------------------------------------------------


def needs_posterior(entry: str) -> bool:
    """Whether a metric entry needs ``(mean, logvar)``: a ``posterior_grid`` metric or any ``@sampled``."""
    name, representation = metric_entry(entry)
    return representation != "mean" or get_metric(name).inputs == "posterior_grid"


def metric_entries(
    suite: str | None = None, metrics: Sequence[str] | None = None, settings: str | None = None
) -> tuple[str, dict[str, dict[str, Any]], str, int]:
    """The metrics to score and how.

    Returns ``(suite name for the record, {entry: settings}, dataset source, evaluation seed)``.

    With a suite, its entries and settings (only ``metrics`` of them, if named; a metric it does not
    list gets the suite's ``metrics.settings`` defaults), its dataset source and evaluation seed.
    Without one, the named ``metrics`` (default: every per-run metric) at ``settings`` ("fast" unless
    given), recorded under ``EXTERNAL_SUITE``.
    """
    if settings is not None and settings not in ("fast", "study"):
        raise ScoreError(f"settings must be 'fast' or 'study'; got {settings!r}")
    if suite is not None:
        loaded = load_suite(suite)
        if settings is not None and settings != loaded.metric_settings:
            raise ScoreError(
                f"--settings {settings} conflicts with suite {loaded.name!r}, whose metrics use "
                f"{loaded.metric_settings!r}: its records are compared at its settings. Drop --settings, "
                "or drop --suite to score --metrics at other settings"
            )
        base, name = dict(loaded.metrics), loaded.name
        chosen_settings, source, seed = (
            settings or loaded.metric_settings,
            loaded.dataset_source,
            loaded.evaluation_seed,
        )
    else:
        base, name, chosen_settings, source, seed = {}, EXTERNAL_SUITE, settings or "fast", "auto", 0
    entries = (
        list(metrics) if metrics is not None else (list(base) if suite is not None else per_run_metrics())
    )
    chosen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        metric_name, _ = metric_entry(entry)
        metric = get_metric(metric_name)  # unknown names fail here, listing the valid ones
        if metric.inputs == "model_group":
            raise ScoreError(
                f"{metric_name} scores a group of runs that differ only in the seed; it is computed by "
                "`vaebench udr` for the runner's runs, not for one representation"
            )
        chosen[entry] = dict(base.get(entry) or getattr(metric, chosen_settings))
    if not chosen:
        raise ScoreError("no metric to score")
    return name, chosen, source, seed


# -- scoring ---------------------------------------------------------------------------------------------


def _probe(representation: Representation, dataset, device: torch.device, seed: int) -> None:
    """Encode the same PROBE_POINTS observations twice: rows, finite codes, one width, determinism."""
    observations = udr_points(dataset, PROBE_POINTS, seed)
    x = to_float(torch.from_numpy(np.asarray(observations)).to(device))
    first = representation.encoder.encode(x.clone())
    second = representation.encoder.encode(x.clone())
    for a, b, part in zip(first, second, ("mean", "logvar")):
        if a is None:
            continue
        a, b = a.double().numpy(), b.double().numpy()
        scale = max(1.0, float(np.abs(a).max()))
        difference = float(np.abs(a - b).max())
        if difference > DETERMINISM_TOLERANCE * scale:
            raise ScoreError(
                f"encoder {representation.label} is not deterministic: the same {PROBE_POINTS} observations "
                f"encoded twice give {part}s that differ by up to {difference:.3g}. Refused: every metric "
                "assumes one code per observation (the study scores the posterior mean). Return the mean, "
                "not a sample; put the model in eval mode (dropout, batch norm)"
            )
    representation.posterior = first[1] is not None


def _dataset_hash(provenance: Mapping[str, Any]) -> str:
    return str(
        provenance.get("cache_content_hash") or provenance.get("sha256") or provenance.get("checksum") or ""
    )


def external_spec(
    representation: Representation,
    suite: str,
    dataset: str,
    metrics: Mapping[str, Mapping[str, Any]],
    dataset_source: str,
    evaluation_seed: int,
) -> dict[str, Any]:
    """The record's ``spec`` of an external representation: no training seed, no training settings."""
    return {
        "suite": suite,
        "dataset": dataset,
        "model": representation.label,
        "seed": None,
        "encoder": dict(representation.identity),
        "metrics": {k: dict(v) for k, v in metrics.items()},
        "dataset_source": dataset_source,
        "evaluation_seed": evaluation_seed,
        "representation": "mean",
    }


def external_run_id(spec: Mapping[str, Any], dataset_hash: str) -> str:
    """``external-<12 hex>``, a hash of what was scored and how.

    The encoder's identity, the data (with its content hash), the metric settings and the evaluation
    seed; neither the suite's name nor a file's display label.
    """
    payload = {k: v for k, v in spec.items() if k not in ("suite", "model")}
    payload["dataset_hash"] = dataset_hash
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"external-{digest[:12]}"


def _check_codes_file(representation: Representation, dataset, dataset_name: str) -> None:
    """Refuse a codes file that cannot stand for the dataset's encoder.

    Random observations, another dataset's length, or unusable codes (``check_codes``); its arrays
    are replaced by the checked ones.
    """
    if dataset.stochastic_observations:
        raise ScoreError(
            f"{dataset_name}'s observations are random given the factors, so the metrics draw fresh "
            "observations that a codes file written in advance cannot hold (it has one code per factor "
            "combination); score an encoder (a TorchScript file or a Python callable) instead"
        )
    what = f"codes file {representation.identity['source']}"
    rows = len(representation.mean) if np.ndim(representation.mean) else 0
    if rows != len(dataset):
        raise ScoreError(
            f"{what} has {rows} rows but {dataset_name} has {len(dataset)} observations: codes are "
            "needed for every observation, in the dataset's canonical (factor-grid) order. "
            "Codes for another dataset?"
        )
    representation.mean = check_codes(representation.mean, what, len(dataset))
    if representation.logvar is not None:
        representation.logvar = check_codes(
            representation.logvar, f"{what}'s logvar", len(dataset), representation.mean.shape[1]
        )


def _leave_out_posterior_metrics(
    representation: Representation, entries: dict, *, named: bool
) -> dict[str, str]:
    """Without a posterior, remove the entries that need one from ``entries``: ``{entry: why}``.

    Refused instead when the user named them.
    """
    if representation.posterior:
        return {}
    posterior = [entry for entry in entries if needs_posterior(entry)]
    reason = (
        "needs the posterior (mean, logvar): Chen et al.'s MIG integrates the Gaussian posterior over "
        "the factor grid and an @sampled entry draws from it, but the encoder gives codes only"
    )
    if posterior and named:
        raise ScoreError(f"{', '.join(posterior)}: {reason}. Return (mean, logvar) to score them")
    for entry in posterior:
        del entries[entry]
    if not entries:
        raise ScoreError(f"every metric asked for {reason}")
    return dict.fromkeys(posterior, reason)


def score_representation(
    representation: Representation,
    dataset_name: str,
    *,
    suite: str | None = None,
    metrics: Sequence[str] | None = None,
    settings: str | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    out: Path | str | None = None,
    force: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> ScoreResult:
    """Check, score and (with ``out``) record one representation; see the module docstring.

    Every check runs before the first metric; ScoreError (or the registries' UnknownNameError) says
    what is wrong.
    """
    say = on_progress or (lambda message: None)
    device = torch.device(device)
    if dataset_name not in list_datasets():
        raise UnknownNameError("dataset", dataset_name, list_datasets())
    suite_name, entries, source, suite_seed = metric_entries(suite, metrics, settings)
    evaluation_seed = suite_seed if seed is None else seed
    if isinstance(evaluation_seed, bool) or not isinstance(evaluation_seed, int) or evaluation_seed < 0:
        raise ScoreError(f"seed must be a non-negative integer; got {evaluation_seed!r}")
    dataset = load_dataset(dataset_name, source)
    data_provenance = dataset.provenance()

    if representation.kind == "codes":
        _check_codes_file(representation, dataset, dataset_name)
    else:
        _probe(representation, dataset, device, evaluation_seed)
    left_out = _leave_out_posterior_metrics(representation, entries, named=metrics is not None)

    spec = external_spec(representation, suite_name, dataset_name, entries, source, evaluation_seed)
    run_id = external_run_id(spec, _dataset_hash(data_provenance))
    path = record_path(Path(out), suite_name, run_id) if out is not None else None
    if path is not None and path.is_file() and not force:
        record = read_record(path)
        say(f"already recorded: {path} (pass --force to rescore)")
        return ScoreResult(
            {k: v for k, v in record.metrics.items() if v is not None}, record, path, True, left_out
        )

    say(f"scoring {representation.label} on {dataset_name}: {', '.join(entries)}")
    started = time.perf_counter()
    ready = None
    if representation.kind == "codes":
        ready = CachedEncoder.precomputed(
            dataset, representation.mean, representation.logvar, evaluation_seed
        )
    evaluation, _ = evaluate_encoder(
        representation.encoder, dataset, device, entries, evaluation_seed, encoder=ready
    )
    seconds = time.perf_counter() - started
    warnings_ = dict(evaluation.warnings)
    for entry, reason in left_out.items():
        warnings_[entry] = [f"not scored: {reason}"]
    record = external_record(
        spec,
        run_id,
        suite_name,
        evaluation,
        seconds,
        warnings_,
        device,
        {**data_provenance, "requested_source": source},
    )
    if path is not None:
        write_record(path, record)
    scores = {k: float(v) for k, v in evaluation.metrics.items() if v is not None and math.isfinite(v)}
    return ScoreResult(scores, record, path, False, left_out)


def score(
    encode: Any,
    dataset: str = "dsprites",
    metrics: str | Sequence[str] = "study",
    seed: int = 0,
    out: Path | str | None = None,
    *,
    suite: str | None = None,
    name: str | None = None,
    layout: str | None = None,
    device: str = "cpu",
    force: bool = False,
    settings: str | None = None,
) -> dict[str, float]:
    """Score a representation from a notebook: ``vaebench.score(encode, dataset="dsprites")``.

    Args:
        encode: a function on numpy batches, a ``torch.nn.Module``, a path (TorchScript ``.pt``,
            codes ``.npy``/``.npz``, ``module:function``), or codes of every grid point (an array, or
            a ``(mean, logvar)`` pair); see the module docstring.
        dataset: a registered dataset name.
        metrics: "study" or "fast" (every per-run metric at those settings), or a list of metric
            entries (``"mig"``, ``"dci"``, ``"mig_chen"``, ``"factor_vae@sampled"``) at ``settings``.
        seed: the evaluation seed (every metric's ``RandomState(seed)``).
        out: an output directory: the record is written under ``out/runs/<suite>/``.
        suite: take the metrics and their settings from this suite instead (and record there).
        name: the label the tables show (default: the function's or file's name).
        layout: "channels_first" (default) or "channels_last" for a callable or module.
        device: where a module encodes ("cpu", "cuda").
        force: rescore even if ``out`` holds this record already.
        settings: "study" (default) or "fast", for a list of ``metrics``.

    Returns:
        ``{metric key: score}`` (flat, as in the records: ``mig``, ``dci_disentanglement``, ...).
    """
    device = resolve_device(device)
    representation = load_representation(encode, name=name, layout=layout, device=device)
    if isinstance(metrics, str):
        if settings is not None and settings != metrics:
            raise ScoreError(
                f"metrics={metrics!r} already names the settings; settings={settings!r} conflicts"
            )
        chosen, settings = None, (None if suite is not None else metrics)
    else:
        chosen, settings = list(metrics), settings or ("study" if suite is None else None)
    result = score_representation(
        representation,
        dataset,
        suite=suite,
        metrics=chosen,
        settings=settings,
        seed=seed,
        device=device,
        out=out,
        force=force,
    )
    return result.metrics
