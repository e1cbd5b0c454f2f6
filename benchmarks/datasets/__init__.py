"""Ground-truth datasets: dSprites and 3D Shapes, official or procedural.

``load_dataset("dsprites")`` returns a dataset whose cache is ready;
``list_datasets("*")`` lists the registered names. See ``base`` for the
dataset abstraction and ``storage`` for the on-disk layout.
"""

from .base import (
    DATASETS,
    SOURCES,
    GroundTruthDataset,
    OfficialFile,
    TrainingImages,
    get_dataset_class,
    list_datasets,
    load_dataset,
    register_dataset,
    sample_batch,
    to_float,
)
from .grid import FactorGrid
from .storage import (
    KNOWN_CHECKSUMS,
    Checksum,
    DatasetFileError,
    OfficialFileMissingError,
    data_root,
)

__all__ = [
    "DATASETS",
    "KNOWN_CHECKSUMS",
    "SOURCES",
    "Checksum",
    "DatasetFileError",
    "FactorGrid",
    "GroundTruthDataset",
    "OfficialFile",
    "TrainingImages",
    "OfficialFileMissingError",
    "data_root",
    "get_dataset_class",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "sample_batch",
    "to_float",
]
