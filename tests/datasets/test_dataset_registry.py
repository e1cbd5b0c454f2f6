"""The dataset registry, declared structure, the sampler protocol and batch conversion."""

import pytest
import torch

from benchmarks.datasets import (
    DATASETS,
    get_dataset_class,
    list_datasets,
    load_dataset,
    sample_batch,
    to_float,
)
from vaebench.errors import UserError
from vaebench.registry import UnknownNameError

EXPECTED = {
    "dsprites": (
        ("shape", "scale", "orientation", "posX", "posY"),
        (3, 6, 40, 32, 32),
        (1, 64, 64),
        "bernoulli",
    ),
    "shapes3d": (
        ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
        (10, 10, 10, 8, 4, 15),
        (3, 64, 64),
        "gaussian",
    ),
}


def test_builtin_datasets_are_registered_and_listed_with_wildcards():
    assert {"dsprites", "shapes3d"} <= set(list_datasets())
    assert list_datasets("dspr*") == ["dsprites"]
    assert list_datasets("nothing*") == []
    assert DATASETS.kind == "dataset" and DATASETS.group == "vaebench.datasets"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_declared_structure(name):
    """What dSprites and 3D Shapes declare (check_dataset checks that every declaration is consistent)."""
    cls = get_dataset_class(name)
    names, sizes, shape, likelihood = EXPECTED[name]
    assert (cls.factor_names, cls.factor_sizes, cls.observation_shape) == (names, sizes, shape)
    assert cls.likelihood == likelihood
    assert cls.official_files, "every built-in dataset names its official file(s)"


def test_unknown_names_raise_the_registry_error_with_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean 'dsprites'"):
        get_dataset_class("dsprite")
    with pytest.raises(UnknownNameError):
        load_dataset("no_such_dataset")


def test_unknown_source_is_refused():
    with pytest.raises(UserError, match="auto, official, procedural"):
        get_dataset_class("dsprites")(source="internet")


def test_construction_does_no_io(data_root):
    ds = get_dataset_class("shapes3d")(source="auto")
    assert ds.root == data_root
    assert not data_root.exists()


def test_root_argument_overrides_the_environment(tmp_path, data_root):
    ds = get_dataset_class("dsprites")(root=tmp_path / "elsewhere")
    assert ds.root == tmp_path / "elsewhere"


def test_sample_batch_gathers_and_converts_on_the_device():
    images = torch.randint(0, 256, (10, 3, 64, 64), dtype=torch.uint8)
    batch = sample_batch(images, torch.tensor([3, 7, 3]))
    assert batch.dtype == torch.float32 and batch.shape == (3, 3, 64, 64)
    assert torch.equal(batch[0], images[3].float() / 255) and torch.equal(batch[2], batch[0])
    binary = torch.tensor([0, 255], dtype=torch.uint8)[torch.randint(0, 2, (4, 1, 64, 64))]
    assert set(to_float(binary).unique().tolist()) == {0.0, 1.0}  # dSprites comes out exactly {0, 1}
