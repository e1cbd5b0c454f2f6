"""Datasets that exist only as their authors' files: smallNORB, Cars3D, MPI3D.

Photographs and renders made elsewhere cannot be generated here, so these
datasets have no procedural source (``generator_version = None``):
``--source procedural`` is refused and ``--source auto`` means the official
files or nothing, each time with a message naming the files and where to get
them. Everything else (checksum verified once and stamped, conversion into the
flat uint8 cache, atomic rename) is ``base.GroundTruthDataset``'s.
"""

from __future__ import annotations

import numpy as np

from .dataset import GroundTruthDataset

__all__ = ["OfficialOnlyDataset"]


class OfficialOnlyDataset(GroundTruthDataset):
    """A dataset read from its official files only; subclasses declare one ``OfficialFile``."""

    generator_version = None  # no procedural generator
    likelihood = "bernoulli"  # as disentanglement_lib trains on every dataset (Locatello et al. 2019)

    def factor_values(self) -> tuple[np.ndarray, ...]:
        """Value indices ``0 .. size - 1`` (the files carry no physical units for these factors)."""
        return tuple(np.arange(size, dtype=np.float64) for size in self.factor_sizes)

    def missing_official_message(self) -> str:
        """Where to put the official file(s), and that there is no procedural fallback."""
        official = self.official_files[0]
        files = ", ".join(str(self.root / name) for name in official.files)
        where = official.url if not official.companions else official.url.rsplit("/", 1)[0] + "/"
        return (
            f"no official {self.name} file(s) in {self.root}: put {files} there by hand (from {where}) "
            f"or run `vaebench data fetch {self.name}`. There is no procedural {self.name} to fall back on."
        )

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Refuse: these images exist only in the official files."""
        raise NotImplementedError(f"{self.name} has no procedural generator; only its official files hold it")
