"""The errors and warning of the dataset package: bad files, missing files, rebuilt caches."""

from vaebench.errors import UserError

__all__ = ["CacheRebuildWarning", "DatasetFileError", "OfficialFileMissingError"]


class DatasetFileError(UserError, ValueError):
    """A dataset file that is not what it should be (checksum, truncation, keys, shapes)."""


class OfficialFileMissingError(UserError, FileNotFoundError):
    """The official file is not in the data directory; the message says where to put it."""


class CacheRebuildWarning(UserWarning):
    """A cache failed its content check (or its manifest did not vouch for it) and is rebuilt."""
