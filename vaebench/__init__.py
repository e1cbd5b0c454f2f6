"""vaebench: a disentanglement benchmarking suite.

The distribution ships three packages with one direction of dependency:
``vae_zoo`` (models) and ``metrics`` (scores on arrays) never import each
other; ``benchmarks`` (data, runner, CLI, tables) composes them. This tiny
package holds what all three share: the registry type and the version.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vaebench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
