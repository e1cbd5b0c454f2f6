"""Every registered dataset passes ``check_dataset`` on a small grid, with fake official files."""

import pytest
from dataset_fakes import CONFORMANCE_FAKES, sha256_of

from benchmarks.datasets import KNOWN_CHECKSUMS, Checksum, get_dataset_class, list_datasets
from benchmarks.datasets.testing import check_dataset


def test_every_registered_dataset_has_fakes():
    assert set(list_datasets()) <= set(CONFORMANCE_FAKES), (
        "add the new dataset to dataset_fakes.CONFORMANCE_FAKES"
    )


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
