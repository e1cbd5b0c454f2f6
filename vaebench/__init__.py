"""vaebench: a disentanglement benchmarking suite.

The distribution ships three packages with one direction of dependency:
``vae_zoo`` (models) and ``metrics`` (scores on arrays) never import each
other; ``benchmarks`` (data, runner, CLI, tables) composes them. This tiny
package holds what all three share: the registry type and the version, and
``score``, the notebook entry point for scoring a representation trained elsewhere
(``benchmarks.score``, imported when called).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vaebench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "score"]


def score(encode, dataset="dsprites", metrics="study", seed=0, out=None, **options):
    """Score any representation with vaebench's metrics: ``{metric key: score}``.

    With ``out``, also its record under ``out/runs/<suite>/``. See ``benchmarks.score.score`` for the
    arguments.
    """
    from benchmarks.score import score as score_representation

    return score_representation(encode, dataset, metrics, seed, out, **options)
