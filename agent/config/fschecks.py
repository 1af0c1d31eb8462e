"""What the file system says now about the files a profile's outputs write. Stdlib only.

One rule, used twice: :mod:`agent.config.resolution` reports these problems when a profile file
is validated, and :mod:`agent.config.compiled` asks again on every use of a cached profile
(the file system is not part of the cache key: a directory created at an output path since the
profile was validated sends it back to full validation).
"""

# os.path, not pathlib: the memoised `azauth validate` answers without importing pathlib.
# ruff: noqa: PTH116, PTH120, PTH206

from __future__ import annotations

import os
import stat

__all__ = ["NAME_MAX", "filesystem_problem"]

NAME_MAX = 255
"""Bytes in one name: ext4, xfs, btrfs, tmpfs, NTFS (in UTF-16 units), APFS."""


def _parents(path: str) -> list[str]:
    """``PurePath(path).parents`` of an absolute ``path``, as strings."""
    parents = []
    current = os.path.dirname(path)
    while True:
        parents.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            return parents
        current = parent


def filesystem_problem(path: str) -> str | None:  # noqa: PLR0911 - one return per outcome
    """Why the file system will refuse to write a file at absolute ``path`` now, or ``None``.

    Only what is certain before any write: an existing directory or special file at the path,
    an existing file where a directory is needed, a name or path too long, a loop of links.
    """
    names = [name for name in path.split(os.sep) if name] or [os.sep]
    longest = max(len(os.fsencode(name)) for name in names)
    if longest > NAME_MAX:
        return f"cannot be created: a name is {longest} bytes long (file systems allow {NAME_MAX})"
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        for parent in _parents(path):
            try:
                if not stat.S_ISDIR(os.stat(parent).st_mode):
                    return f"cannot be created: {parent!r} exists and is not a directory"
            except OSError:
                continue
        return "cannot be created: a name on the way is not a directory"
    except OSError as exc:  # ENAMETOOLONG, ELOOP, EACCES
        return f"cannot be used: {exc.strerror or exc}"
    if stat.S_ISDIR(info.st_mode):
        return "is an existing directory"
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        return "is a special file (a device, pipe or socket), not a regular file"
    return None
