"""Ground-truth datasets: dSprites, 3D Shapes and the rest, official or procedural.

``load_dataset("dsprites")`` returns a dataset whose cache is ready;
``list_datasets("*")`` lists the registered names.

Module map:

* ``registry`` - the registry (``register_dataset``, entry points ``vaebench.datasets``)
  and the loaders ``list_datasets``, ``get_dataset_class``, ``load_dataset``;
* ``dataset`` - ``GroundTruthDataset``, the class every dataset subclasses (an extension
  point), and ``TrainingImages``, what training draws batches from;
* ``grid`` - ``FactorGrid``, the one mapping between factors and flat indices;
* ``sources`` - the data directory, ``OfficialFile``, and preparing the official,
  procedural or auto source;
* ``checksums`` - known checksums of the official files, chunked content hashes, stamps;
* ``cache`` - the flat image cache (``FlatCache``) and reading it by index (``CacheReader``);
* ``errors``, ``progress``, ``parallel`` - the errors, the progress bar, the process pool;
* ``official`` - reading official files (npz, hdf5, float labels to indices) and ``fetch``;
* one module per dataset family: ``dsprites``, ``dsprites_variants``, ``scream``,
  ``shapes3d`` (``shapes3d_scene``), ``smallnorb``, ``cars3d``, ``mpi3d`` (``official_only``),
  and ``toy`` (``toy_squares``, tiny and procedural, for tests and plug-in authors);
* ``testing`` - ``check_dataset``, the conformance check for any dataset class;
* ``cli`` - ``vaebench data``.
"""

from .checksums import KNOWN_CHECKSUMS, Checksum
from .dataset import GroundTruthDataset, TrainingImages, sample_batch, to_float
from .errors import DatasetFileError, OfficialFileMissingError
from .grid import FactorGrid
from .registry import DATASETS, get_dataset_class, list_datasets, load_dataset, register_dataset
from .sources import SOURCES, OfficialFile, data_root

__all__ = [
    "DATASETS",
    "KNOWN_CHECKSUMS",
    "SOURCES",
    "Checksum",
    "DatasetFileError",
    "FactorGrid",
    "GroundTruthDataset",
    "OfficialFile",
    "OfficialFileMissingError",
    "TrainingImages",
    "data_root",
    "get_dataset_class",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "sample_batch",
    "to_float",
]
