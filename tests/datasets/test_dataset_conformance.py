"""Every registered dataset passes ``check_dataset`` on a small grid, with fake official files."""

import pytest
import torch
from dataset_fakes import CONFORMANCE_FAKES, sha256_of

from benchmarks.datasets import DATASETS, KNOWN_CHECKSUMS, Checksum, get_dataset_class, list_datasets
from benchmarks.datasets.testing import check_dataset
from benchmarks.datasets.toy import ToySquares


def test_every_built_in_dataset_has_fakes():
    built_in = {
        n for n in list_datasets() if get_dataset_class(n).__module__.startswith("benchmarks.datasets.")
    }
    assert built_in <= set(CONFORMANCE_FAKES), "add the new dataset to dataset_fakes.CONFORMANCE_FAKES"


@pytest.mark.parametrize("name", list_datasets())
def test_registered_dataset_conforms(name, data_root, monkeypatch):
    overrides, write = CONFORMANCE_FAKES.get(name, ({}, None))

    def write_trusted(ds):
        expected = write(ds)
        for path in ds.root.iterdir():  # the fakes verify as if they were the published files
            if path.is_file():
                monkeypatch.setitem(KNOWN_CHECKSUMS, path.name, Checksum("sha256", sha256_of(path)))
        return expected

    check_dataset(
        get_dataset_class(name), data_root, overrides=overrides, write_files=write and write_trusted
    )


class _GlobalNoiseSquares(ToySquares):
    """Draws its observation noise from torch's global generator instead of the run's."""

    name = "global_noise_squares"
    stochastic_observations = True

    def observation_noise(self, batch, generator):
        return (batch + 0.1 * torch.rand(batch.shape)).clamp(0, 1)


def test_a_dataset_breaking_a_rule_fails_naming_it(data_root, monkeypatch):
    with pytest.raises(LookupError, match="not a registered dataset"):
        check_dataset(_GlobalNoiseSquares, data_root)
    monkeypatch.setitem(DATASETS._entries, _GlobalNoiseSquares.name, _GlobalNoiseSquares)
    with pytest.raises(AssertionError, match="global_noise_squares: observation_noise differs for the same"):
        check_dataset(_GlobalNoiseSquares, data_root)
