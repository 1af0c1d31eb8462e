"""Writing feed client files: the merged npmrc, and everything else through ``atomic_write``.

An npmrc is usually the user's own file (``~/.npmrc``): azauth replaces only its block in it
(see :func:`agent.feeds.render.merge_npmrc`), reading and replacing the file under a lock so
that the outputs of several connections merging into one file never lose each other's lines:
a thread lock within the process, and across processes the token cache's ``flock``
(:meth:`agent.credential_helpers.cache.TokenCache.lock`, keyed by the SHA-256 of the file's absolute
path). When the cross-process lock cannot be had (no cache directory, a 10 s wait), the merge goes
on under the thread lock alone.
"""

# ruff: noqa: PTH100 - str paths and O_NOFOLLOW, as in agent.outputs._atomic

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
from collections.abc import Iterator, Sequence

from agent.credential_helpers import cache as tokencache
from agent.exceptions import OutputError
from agent.feeds.render import FeedTarget, merge_npmrc, unmerge_npmrc
from agent.outputs._atomic import atomic_write, remove_output

__all__ = ["MergedNpmrc", "read_text"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_MAX_BYTES = 1024 * 1024
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()
_PROCESS_LOCK_TIMEOUT = 10.0


def _thread_lock(path: str) -> threading.Lock:
    with _GUARD:
        return _LOCKS.setdefault(path, threading.Lock())


@contextlib.contextmanager
def _lock(path: str) -> Iterator[None]:
    """Hold ``path``'s merge lock in this process and, best effort, across processes."""
    with _thread_lock(path):
        key = hashlib.sha256(b"azauth npmrc merge\0" + path.encode()).hexdigest()
        cache = tokencache.TokenCache(tokencache.cache_dir(os.environ))
        with cache.lock(key, timeout=_PROCESS_LOCK_TIMEOUT):
            yield


def read_text(path: str, *, follow_symlinks: bool = False) -> str:
    """The text of ``path`` ("" when missing), not through a symbolic link unless told.

    A file azauth will replace is never read through a link (it would not write through one);
    a file it only copies (the user's npmrc, for ``azauth exec --feeds``) may be.

    Only a regular file is read: a FIFO or device is refused without waiting on it
    (``O_NONBLOCK``: a FIFO without a writer must not hang the runner or ``azauth exec``).

    Raises:
        OutputError: a link (unless followed), not a regular file, too large, unreadable or
            not UTF-8.
    """
    flags = os.O_RDONLY | _O_CLOEXEC | _O_NONBLOCK | (0 if follow_symlinks else _O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise OutputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    try:
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise OutputError("not a regular file: refusing to read it", path=path)
            data = file.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise OutputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if len(data) > _MAX_BYTES:
        raise OutputError("larger than 1 MiB: not an npmrc", path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OutputError("not UTF-8 text", path=path) from None


class MergedNpmrc:
    """A pending merge of ``owner``'s feed lines into the npmrc at ``path``."""

    def __init__(self, path: str, owner: str, feeds: Sequence[FeedTarget], token: str) -> None:
        self.path = os.path.abspath(path)
        self.owner = owner
        self._feeds = tuple(feeds)
        self._token = token

    def __repr__(self) -> str:
        return f"MergedNpmrc({self.path!r}, owner={self.owner!r})"

    def write(self) -> None:
        """Merge the lines in (atomically, mode 0600).

        Raises:
            OutputError: the file cannot be read or written, or the feeds cannot be rendered.
        """
        with _lock(self.path):
            existing = read_text(self.path)
            try:
                text = merge_npmrc(existing, self.owner, self._feeds, self._token)
            except ValueError as exc:
                raise OutputError(str(exc), path=self.path) from None
            atomic_write(self.path, text.encode("utf-8"))

    @staticmethod
    def remove(path: str, owner: str) -> bool:
        """Take ``owner``'s block out of ``path``; delete the file when nothing else is left.

        Returns whether anything was removed.

        Raises:
            OutputError: the file cannot be read or written.
        """
        target = os.path.abspath(path)
        with _lock(target):
            existing = read_text(target)
            rest = unmerge_npmrc(existing, owner)
            if rest == existing or (not existing):
                return False
            if rest.strip():
                atomic_write(target, rest.encode("utf-8"))
                return True
            return remove_output(target)
