"""Which directories azauth trusts to hold tokens, and creating them safely. Stdlib only.

The one rule for every directory azauth writes into (outputs, exec's private directory) or
reads tokens from (the ``azauth token`` cache), modelled on what ssh (``StrictModes``) and gpg
(``--homedir`` permission checks) do:

* every component of the path, from ``/`` down, is opened with ``O_DIRECTORY | O_NOFOLLOW``
  relative to its parent's descriptor, so what is checked is what is used;
* each one must be owned by the current user or by root, and not writable by group or others.
  A world-writable directory with the sticky bit (``/tmp``) is accepted only as an *ancestor*:
  the directory azauth writes into must itself be private;
* a symbolic link anywhere in the path is refused unless ``AZAUTH_ALLOW_SYMLINKED_DIRS=1``.
  Default refuse, because whoever can replace a link redirects tokens to a place of their
  choosing and azauth cannot tell a deliberate layout from a planted link; the opt-in resolves
  links and checks their targets with the same rules;
* missing directories are created ``0700`` with ``mkdir`` relative to the parent's descriptor,
  opened with ``O_NOFOLLOW`` and fixed with ``fchmod``: a link swapped in between cannot
  redirect the ``chmod``.

A directory that breaks the rule is reported by :class:`UntrustedDirectoryError`, which names
the directory, its owner and mode, and the fix. Windows has no such modes: there only the
symbolic-link rule applies.
"""

# os, not pathlib: descriptors (dir_fd, O_NOFOLLOW), and the token warm path imports this.
# ruff: noqa: PTH100, PTH102, PTH112, PTH114, PTH118, PTH120, PTH208

from __future__ import annotations

import errno
import os
import stat

from agent import envvars

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "ALLOW_SYMLINKS_ENV",
    "TrustedDirectory",
    "UntrustedDirectoryError",
    "open_trusted_directory",
    "read_regular_file",
    "symlinks_allowed",
    "trusted_directory",
]

ALLOW_SYMLINKS_ENV = envvars.AZAUTH_ALLOW_SYMLINKED_DIRS
"""Set to ``1`` to accept symbolic links among the directories of a path (default: refused)."""

_POSIX = os.name == "posix"
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_OPEN_DIR = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK
_MAX_LINKS = 40  # as the kernel's ELOOP limit
# dir_fd (openat and friends): POSIX. Elsewhere (Windows) paths are used (TrustedDirectory).
_DIR_FD = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd  # replace too


class UntrustedDirectoryError(Exception):
    """A directory azauth will not read tokens from or write tokens into.

    Attributes:
        directory: the offending directory (as reached, links not resolved).
        reason: why, in words; ``str()`` adds the fix.
    """

    def __init__(self, directory: str, reason: str, fix: str) -> None:
        self.directory = directory
        self.reason = reason
        super().__init__(f"{directory}: {reason}; {fix}")


def symlinks_allowed(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``AZAUTH_ALLOW_SYMLINKED_DIRS`` opts in to symbolic links."""
    environ = os.environ if env is None else env
    return environ.get(ALLOW_SYMLINKS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def open_trusted_directory(
    path: str, *, create: bool = False, env: Mapping[str, str] | None = None
) -> int:
    """Open ``path`` after checking every component; return its descriptor (caller closes it).

    Args:
        path: the directory; relative to the working directory when not absolute.
        create: create missing components (``0700``) instead of raising FileNotFoundError.
        env: where ``AZAUTH_ALLOW_SYMLINKED_DIRS`` is read (default ``os.environ``).

    Raises:
        UntrustedDirectoryError: a component breaks the rule (module docstring).
        FileNotFoundError: a component is missing and ``create`` is false.
        OSError: a directory could not be opened or created.
    """
    allow_links = symlinks_allowed(env)
    pending = _parts(os.path.abspath(path))
    shown = os.sep
    fd = os.open(os.sep, _OPEN_DIR)
    links = 0
    try:
        _check(fd, shown, final=not pending)
        while pending:
            name = pending.pop(0)
            if name == ".":
                continue
            step = _step(fd, name, os.path.join(shown, name), create=create, links=allow_links)
            if isinstance(step, str):  # a symbolic link, allowed: walk its target instead
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many symbolic links", shown)  # noqa: TRY301
                if step.startswith(os.sep):
                    os.close(fd)
                    fd = os.open(os.sep, _OPEN_DIR)
                    shown = os.sep
                pending[:0] = _parts(step)
                continue
            os.close(fd)
            fd = step
            shown = os.path.dirname(shown) if name == ".." else os.path.join(shown, name)
            _check(fd, shown, final=not pending)
    except BaseException:
        os.close(fd)
        raise
    return fd


class TrustedDirectory:
    """A checked directory; file operations on names inside it, relative to its descriptor.

    On POSIX every operation uses the descriptor (``dir_fd``), so the directory that was checked
    is the one used even if its path is swapped later. Where ``dir_fd`` does not exist
    (Windows) the operations use the path. Close it (or use ``with``).
    """

    __slots__ = ("fd", "path")

    def __init__(self, path: str, fd: int | None) -> None:
        self.path = path
        self.fd = fd

    def __enter__(self) -> TrustedDirectory:  # noqa: PYI034 - typing.Self costs the warm path
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the descriptor."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def _at(self, name: str) -> str:
        return name if self.fd is not None else os.path.join(self.path, name)

    def open(self, name: str, flags: int, mode: int = 0o777) -> int:
        """``os.open`` of ``name`` in this directory."""
        return os.open(self._at(name), flags, mode, dir_fd=self.fd)

    def lstat(self, name: str) -> os.stat_result:
        """``os.lstat`` of ``name`` in this directory."""
        return os.lstat(self._at(name), dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        """Remove ``name`` from this directory."""
        os.unlink(self._at(name), dir_fd=self.fd)

    def replace(self, source: str, target: str) -> None:
        """Rename ``source`` over ``target``, both in this directory (atomic)."""
        os.replace(self._at(source), self._at(target), src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def listdir(self) -> list[str]:
        """The names in this directory."""
        return os.listdir(self.fd if self.fd is not None else self.path)

    def fsync(self) -> None:
        """Make renames in this directory durable (best effort: errors are ignored)."""
        if self.fd is not None:
            try:  # noqa: SIM105 - contextlib would cost the warm token path its import
                os.fsync(self.fd)
            except OSError:
                pass


def trusted_directory(
    path: str, *, create: bool = False, env: Mapping[str, str] | None = None
) -> TrustedDirectory:
    """Check (and with ``create`` make) ``path`` as :func:`open_trusted_directory` does.

    Raises:
        UntrustedDirectoryError, FileNotFoundError, OSError: as :func:`open_trusted_directory`.
    """
    absolute = os.path.abspath(path)
    if _DIR_FD:
        return TrustedDirectory(absolute, open_trusted_directory(absolute, create=create, env=env))
    _check_without_descriptors(absolute, create=create, links=symlinks_allowed(env))
    return TrustedDirectory(absolute, None)


def _check_without_descriptors(path: str, *, create: bool, links: bool) -> None:
    """Windows: no modes to check; refuse links among the components, create missing ones."""
    chain = [path]
    while os.path.dirname(chain[-1]) != chain[-1]:
        chain.append(os.path.dirname(chain[-1]))
    for current in reversed(chain):
        if os.path.islink(current) and not links:
            raise UntrustedDirectoryError(
                current,
                "is a symbolic link (a link in the path could redirect tokens)",
                f"use the real path or set {ALLOW_SYMLINKS_ENV}=1",
            )
        if not os.path.isdir(current):
            if os.path.lexists(current):
                raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", current)
            if not create:
                raise FileNotFoundError(errno.ENOENT, "no such directory", current)
            try:  # noqa: SIM105 - no contextlib on the warm path
                os.mkdir(current, 0o700)
            except FileExistsError:
                pass


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _step(fd: int, name: str, here: str, *, create: bool, links: bool) -> int | str:
    """Open ``name`` in ``fd``: its descriptor, or the target of an allowed symbolic link."""
    try:
        return os.open(name, _OPEN_DIR, dir_fd=fd)
    except FileNotFoundError:
        if not create or name == "..":
            raise
        return _make(fd, name)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise
    info = os.lstat(name, dir_fd=fd)
    if not stat.S_ISLNK(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", here)
    if not links:
        raise UntrustedDirectoryError(
            here,
            "is a symbolic link (a link in the path could redirect tokens)",
            f"use the real path ({os.path.realpath(here)}) or set {ALLOW_SYMLINKS_ENV}=1",
        )
    return os.readlink(name, dir_fd=fd)


def read_regular_file(path: str, *, max_bytes: int = 16 * 1024 * 1024) -> bytes:
    """Read ``path`` (links followed) only if it is a regular file, without ever blocking.

    The open is non-blocking, so a FIFO or device planted where a file is expected cannot hang
    azauth; it is refused instead.

    Raises:
        OSError: missing or unreadable, not a regular file, or larger than ``max_bytes``.
    """
    fd = os.open(path, os.O_RDONLY | _O_CLOEXEC | _O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, device or directory)", path)
        if info.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", path)
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > max_bytes:
                raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", path)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _make(parent: int, name: str) -> int:
    """``mkdir`` ``name`` in ``parent`` (0700), open it without following links, ``fchmod``."""
    # Created concurrently (another azauth)? Then it is checked like any existing directory.
    try:  # noqa: SIM105 - no contextlib on the warm path
        os.mkdir(name, 0o700, dir_fd=parent)
    except FileExistsError:
        pass
    child = os.open(name, _OPEN_DIR, dir_fd=parent)
    try:
        info = os.fstat(child)
        if _POSIX and info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(child, 0o700)  # mkdir honours the umask; the mode must be exact
    except BaseException:
        os.close(child)
        raise
    return child


def _check(fd: int, shown: str, *, final: bool) -> None:
    if not _POSIX:
        return
    info = os.fstat(fd)
    mode = stat.S_IMODE(info.st_mode)
    euid = os.geteuid()
    if info.st_uid not in (euid, 0):
        raise UntrustedDirectoryError(
            shown,
            f"owned by {_user(info.st_uid)}, mode {mode:04o}: another user controls it",
            f"use a directory of your own, or `chown {_user(euid).split()[0]} {shown}`",
        )
    if not mode & 0o022:
        return
    sticky_ancestor = not final and mode & stat.S_ISVTX
    if sticky_ancestor:
        return  # /tmp-like: others cannot rename or remove what we create inside
    who = "group and others" if mode & 0o022 == 0o022 else ("others" if mode & 0o002 else "group")
    fix = f"`chmod go-w {shown}`"
    if final and mode & stat.S_ISVTX:
        fix = "write into a private directory inside it (azauth creates missing ones 0700)"
    raise UntrustedDirectoryError(
        shown,
        f"owned by {_user(info.st_uid)}, mode {mode:04o}: writable by {who}, who could replace "
        "what azauth writes",
        fix,
    )


def _user(uid: int) -> str:
    try:
        import pwd  # noqa: PLC0415 - only when reporting

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"
