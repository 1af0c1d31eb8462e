"""The one way azauth writes a file: private, atomic, durable, never through a symbolic link.

Guarantees of :func:`atomic_write`:

* Readers see either the previous content or the complete new content, never a mix or a
  truncated file: the data goes to a temporary file in the target's directory, is flushed and
  fsynced, then renamed over the target (``os.replace``, atomic within one filesystem), and the
  directory is fsynced so the rename survives a crash.
* The file is created with its final mode (``0600`` by default) from the first byte on; it is
  never readable by others, not even briefly. Missing parent directories are created ``0700``
  through descriptors (directories that already exist keep their mode).
* The directory must be trusted (:mod:`agent._dirtrust`): owned by the user or root, not
  writable by group or others, no symbolic link in its path (unless opted in); every later
  step (the temporary file, the rename) works relative to the directory's descriptor, so a
  directory swapped after the check is not written into.
* A symbolic link at the target (dangling or not) or any non-regular file is refused with
  :class:`~agent.exceptions.OutputError`. ``rename(2)`` replaces a link rather than following it,
  so a link swapped in after the check cannot redirect the write either.
* On failure the temporary file is removed, the target keeps its previous content and the error
  names the path (never the data).

Temporary files are named ``.<target name>.azauth-<16 hex digits>.tmp``. A process killed
between creating and renaming one (SIGKILL, power loss) leaves it behind. Writes sweep such
leftovers (of any target) out of their directory once they are older than
:data:`STALE_TEMP_SECONDS`: the first write into a directory sweeps it, later writes only when
:data:`SWEEP_INTERVAL_SECONDS` have passed since its last sweep (:class:`StaleTempSweeps`), so a
run writing 2,000 files into one directory lists it once, not 2,000 times, and a long watch still
cleans a leftover that appears later. :func:`remove_output` sweeps in the same way on its own
schedule, so the first removal in a directory cleans it too.
"""

# pathlib's resolve() follows symbolic links, which this module must never do; it works on the
# raw os calls (lstat, O_NOFOLLOW, O_EXCL) on purpose.
# ruff: noqa: PTH100

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable

from agent._dirtrust import TrustedDirectory, UntrustedDirectoryError, trusted_directory
from agent.exceptions import OutputError

__all__ = [
    "STALE_TEMP_SECONDS",
    "SWEEP_INTERVAL_SECONDS",
    "StaleTempSweeps",
    "atomic_write",
    "remove_output",
    "temp_name_pattern",
]

STALE_TEMP_SECONDS = 60.0
"""Age after which a leftover temporary file is removed.

A write takes milliseconds; a minute leaves ample room for another azauth process that is
writing the same target right now, whose temporary file must not be pulled from under it.
"""

SWEEP_INTERVAL_SECONDS = STALE_TEMP_SECONDS
"""Seconds between two sweeps of one directory for leftover temporary files.

A leftover becomes removable :data:`STALE_TEMP_SECONDS` after its last change, so it is gone at
most this much later, at the next write into its directory.
"""

_TEMP_SUFFIX = ".tmp"
_TEMP_MARK = ".azauth-"
_TEMP_RANDOM_HEX = 16

# O_NOFOLLOW and O_DIRECTORY do not exist on Windows; there the checks below still refuse links.
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def temp_name_pattern(target_name: str) -> re.Pattern[str]:
    """Return the pattern matching the temporary file names used for ``target_name``."""
    return re.compile(
        re.escape(f".{target_name}{_TEMP_MARK}")
        + f"[0-9a-f]{{{_TEMP_RANDOM_HEX}}}"
        + re.escape(_TEMP_SUFFIX)
    )


# Any target's temporary file: one pattern, matched once per entry of a sweep.
_ANY_TEMP = re.compile(
    r"\..+" + re.escape(_TEMP_MARK) + f"[0-9a-f]{{{_TEMP_RANDOM_HEX}}}" + re.escape(_TEMP_SUFFIX),
    re.DOTALL,
)


class StaleTempSweeps:
    """When each directory is due for a sweep of leftover temporary files.

    Args:
        interval: seconds between two sweeps of one directory (default
            :data:`SWEEP_INTERVAL_SECONDS`).
        monotonic: the clock the interval is counted on (default ``time.monotonic``; the runner
            passes its own clock's, so a watch on a ``FakeClock`` sweeps on simulated time).

    Thread-safe: :func:`atomic_write` runs in worker threads. Remembers at most 1,024
    directories (the least recently swept are forgotten first, which only makes them due).
    """

    _MAX_DIRECTORIES = 1024

    def __init__(
        self,
        *,
        interval: float = SWEEP_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # directory -> when it was last swept

    def claim(self, directory: str) -> bool:
        """Whether ``directory`` is due; if so, it counts as swept from now on."""
        now = self._monotonic()
        with self._lock:
            last = self._last.get(directory)
            if last is not None and now - last < self.interval:
                return False
            self._last.pop(directory, None)  # re-inserted last: dict order is sweep order
            self._last[directory] = now
            while len(self._last) > self._MAX_DIRECTORIES:
                del self._last[next(iter(self._last))]
            return True


# The schedules of writes and of removals in this process (removals have their own, so the
# first removal in a directory sweeps it even right after a write did).
_WRITE_SWEEPS = StaleTempSweeps()
_REMOVE_SWEEPS = StaleTempSweeps()


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o600,
    sweeps: StaleTempSweeps | None = None,
) -> None:
    """Replace the content of ``path`` with ``data`` atomically (see the module docstring).

    Args:
        path: the file to write; relative paths are relative to the working directory.
        data: the complete new content.
        mode: permission bits of the file, applied exactly (the umask cannot widen or narrow it).
        sweeps: the schedule of leftover sweeps (default: this process's).

    Raises:
        OutputError: the file could not be written, or its directory is not trusted
            (:mod:`agent._dirtrust`: owned by another user, writable by others, a symbolic
            link in the path); its previous content is untouched.
    """
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    with _open_directory(directory, target, create=True) as folder:
        _check_target(folder, name, target)
        if (sweeps or _WRITE_SWEEPS).claim(directory):
            _remove_stale_temps(folder)
        temp = f".{name}{_TEMP_MARK}{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        try:
            fd = folder.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY,
                mode & 0o777,
            )
        except OSError as exc:
            raise OutputError(
                f"cannot create a file in {directory}: {_reason(exc)}", path=target
            ) from None
        try:
            try:
                # The umask may have removed bits at creation; it can never have added any, so
                # the file was at most as open as ``mode`` all along.
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, mode & 0o7777)
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            folder.replace(temp, name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                folder.unlink(temp)
            raise OutputError(f"cannot write: {_reason(exc)}", path=target) from None
        folder.fsync()  # best effort: the new content is in place already


def remove_output(path: str | os.PathLike[str]) -> bool:
    """Remove a file azauth wrote, without following symbolic links.

    Also sweeps stale temporary files out of its directory (see the module docstring).

    Returns:
        ``True`` if the file was removed, ``False`` if it (or its directory) did not exist.

    Raises:
        OutputError: ``path`` is a symbolic link, a directory or another non-regular file (not
            something azauth wrote), its directory is not trusted, or it could not be removed.
    """
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    try:
        folder = _open_directory(directory, target, create=False)
    except FileNotFoundError:
        return False
    with folder:
        if _REMOVE_SWEEPS.claim(directory):
            _remove_stale_temps(folder)
        try:
            info = folder.lstat(name)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise OutputError(f"cannot remove: {_reason(exc)}", path=target) from None
        if not stat.S_ISREG(info.st_mode):
            raise OutputError(f"not removed: {_describe(info.st_mode)}", path=target)
        try:
            folder.unlink(name)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise OutputError(f"cannot remove: {_reason(exc)}", path=target) from None
        folder.fsync()
    return True


def _open_directory(directory: str, target: str, *, create: bool) -> TrustedDirectory:
    """The trusted directory (missing parents created 0700 when ``create``)."""
    try:
        return trusted_directory(directory, create=create)
    except UntrustedDirectoryError as exc:
        raise OutputError(f"refusing to write into {exc}", path=target) from None
    except NotADirectoryError as exc:
        where = exc.filename or directory
        raise OutputError(f"{where} exists and is not a directory", path=target) from None
    except FileNotFoundError:
        if create:
            raise OutputError(f"cannot create directory {directory}", path=target) from None
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot open or create directory {directory}: {_reason(exc)}", path=target
        ) from None


def _check_target(folder: TrustedDirectory, name: str, target: str) -> None:
    """Refuse a symbolic link or a non-regular file at ``target``."""
    try:
        info = folder.lstat(name)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot inspect: {_reason(exc)}", path=target) from None
    if stat.S_ISLNK(info.st_mode):
        raise OutputError("refusing to write through a symbolic link", path=target)
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"refusing to replace {_describe(info.st_mode)}", path=target)


def _remove_stale_temps(folder: TrustedDirectory) -> None:
    """Remove our leftover temporary files in ``folder`` older than STALE_TEMP_SECONDS.

    Best effort: a leftover we cannot remove does no harm, so errors are ignored. Only regular
    files owned by the current user, named as :func:`atomic_write` names them, are touched.
    """
    try:
        entries = folder.listdir()
    except OSError:
        return
    deadline = time.time() - STALE_TEMP_SECONDS
    euid = os.geteuid() if hasattr(os, "geteuid") else None
    mark = _TEMP_MARK
    for entry in entries:
        if mark not in entry or not _ANY_TEMP.fullmatch(entry):
            continue
        try:
            info = folder.lstat(entry)
            if not stat.S_ISREG(info.st_mode) or info.st_mtime > deadline:
                continue
            if euid is not None and info.st_uid != euid:
                continue
            folder.unlink(entry)
        except OSError:
            continue


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _describe(st_mode: int) -> str:
    if stat.S_ISLNK(st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st_mode):
        return "a directory"
    return "a special file (not a regular file)"


def _reason(exc: OSError) -> str:
    """Return the OS's explanation of ``exc`` without the paths it may embed."""
    if exc.strerror:
        return exc.strerror
    if exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__
