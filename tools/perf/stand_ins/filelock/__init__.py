"""Stand-in for the filelock package where it is not installed (``gpu_check.sh``).

``fcntl.flock``, with the semantics of filelock's UnixFileLock for what vaebench uses:
``acquire(timeout, poll_interval)``, ``release``, the context manager and ``Timeout``.
"""

import fcntl
import os
import time

__version__ = "gpu_check stand-in"


class Timeout(TimeoutError):
    """The lock was not acquired within the timeout."""

    def __init__(self, lock_file):
        super().__init__(f"The file lock '{lock_file}' could not be acquired.")
        self.lock_file = lock_file


class _Acquired:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        self.lock.release()


class FileLock:
    """A reentrant exclusive lock on ``lock_file`` (``fcntl.flock``); ``timeout`` < 0 waits forever."""

    def __init__(self, lock_file, timeout=-1, **_ignored):
        self.lock_file, self.timeout = str(lock_file), timeout
        self._fd, self._count = None, 0

    @property
    def is_locked(self):
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout=None, poll_interval=0.05, **_ignored):
        """Take the lock, polling every ``poll_interval`` s; raise ``Timeout`` after ``timeout`` s."""
        timeout = self.timeout if timeout is None else timeout
        if self._fd is None:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            start = time.monotonic()
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if timeout is not None and 0 <= timeout <= time.monotonic() - start:
                        os.close(fd)
                        raise Timeout(self.lock_file) from None
                    time.sleep(poll_interval)
            self._fd = fd
        self._count += 1
        return _Acquired(self)

    def release(self, force=False):
        """Give one acquisition back (all of them with ``force``); unlock at the last."""
        if self._fd is None:
            return
        self._count = 0 if force else self._count - 1
        if self._count <= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd, self._count = None, 0

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


SoftFileLock = UnixFileLock = FileLock
