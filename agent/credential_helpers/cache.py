"""The on-disk token cache shared by every ``azauth token`` and ``azauth git-credential`` call.

kubectl, git and ``az``-style callers start a new process for every token they need, so the cache
lives on disk and is shared by concurrent processes.

Location: ``AZAUTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/azauth``, else ``~/.cache/azauth``.
The directory must pass :mod:`agent._dirtrust` (owned by the user or root, not writable by
group or others, no symbolic link in its path unless opted in): an untrusted directory is never
read, and ``azauth token`` reports it as an OUTPUT error. Directories azauth creates there are
``0700``; every file is ``0600``, written atomically (temp file in the same directory, fsync,
``os.replace``) and never through a symbolic link. Files are opened relative to the directory's
descriptor, non-blocking (a FIFO planted as an entry cannot hang a reader); a file not owned by
the current user, not a regular file, or readable by others is never trusted.

Keys. Two hashes, both SHA-256:

- the *selector* covers everything that decides which token is meant: the configuration (the
  profile file's absolute path and the SHA-256 of its bytes, or the ``AZURESUBSCRIPTION_*``
  values without a file), ``--profile``, every ``AZAUTH_*`` variable (``AZAUTH_PROFILE`` and the
  overrides; ``AZAUTH_CACHE_DIR`` aside), ``--connection``, the sorted set of ``--scope`` values,
  ``--tenant``, ``SYSTEM_OIDCREQUESTURI``, ``AZURE_AUTHORITY_HOST`` and
  ``AZURE_IDENTITY_DISABLE_MULTITENANTAUTH``;
- the *entry key* adds the name of the variable holding System.AccessToken and a hash of its
  value, so a new job (a new System.AccessToken) is a new key.

The selector's ``<selector>.var`` file records that variable's name (it comes from the profile
file, which the warm path does not parse); ``<key>.token`` holds the access token, what is
known about it and the full key it answers (an entry copied or renamed to another key's name is
ignored); ``<key>.lock`` serialises refreshes. The system access token and the OIDC token
are never stored, only the access token.

Freshness: an entry is served while it has at least :func:`refresh_margin` left, which is
5 minutes, or half the token's lifetime when that is shorter; also not after Entra's
``refresh_in`` hint. Otherwise the caller refreshes it.

Stdlib only (the warm path imports this module); writing imports :mod:`agent.outputs._atomic`
lazily. Time is passed in (``now``), never read here, except by the lock's wait loop.
"""

# os, not pathlib: O_NOFOLLOW, fstat of the opened file, flock on a descriptor, and pathlib
# would cost the warm path 2 ms of imports.
# ruff: noqa: PTH100, PTH111, PTH118, PTH119

from __future__ import annotations

import json
import math
import os
import stat
import time

from agent import envvars
from agent._dirtrust import (
    TrustedDirectory,
    UntrustedDirectoryError,
    read_regular_file,
    trusted_directory,
)
from agent.credential_helpers.protocols import TokenDetails

# Neither typing nor collections.abc at run time: a warm call must not pay for importing them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import TracebackType

try:
    # CPython's built-in SHA-256: hashlib would load OpenSSL first, 2 ms of a 20 ms warm call.
    from _sha256 import sha256  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - other Pythons (3.12+ name it _sha2)
    from hashlib import sha256

__all__ = [
    "CACHE_DIR_ENV",
    "FORMAT_VERSION",
    "LOCK_TIMEOUT",
    "MAX_MARGIN",
    "MIN_USABLE",
    "CacheEntry",
    "CacheLock",
    "ConfigIdentity",
    "TokenCache",
    "TokenRequest",
    "cache_dir",
    "decode_entry",
    "encode_entry",
    "entry_key",
    "find_config_file",
    "identify_config",
    "is_fresh",
    "is_key",
    "is_usable",
    "owned_by_user",
    "read_private",
    "refresh_margin",
    "selector_for",
    "sha256_hex",
]

CACHE_DIR_ENV = envvars.AZAUTH_CACHE_DIR
CONFIG_ENV = envvars.AZAUTH_CONFIG
FORMAT_VERSION = 2
"""Part of every key and entry: a new format never reads an old one."""

MAX_MARGIN = 300.0
"""Seconds of validity an entry must have left to be served (at most; see refresh_margin)."""

MIN_USABLE = 60.0
"""Seconds of validity below which an entry is never served, even when a refresh failed."""

LOCK_TIMEOUT = 180.0
"""Seconds a process waits for another's refresh before refreshing without the lock.

Longer than one acquisition's retry deadline (120 s by default), so it only ends the wait when
the holder hangs or died without the kernel releasing its lock (a frozen NFS mount)."""

SWEEP_AGE = 7 * 24 * 3600.0
"""Lock and ``.var`` files untouched this long are removed (they hold no secret)."""

IMPLICIT_VARIABLES = envvars.AZURESUBSCRIPTION_VARIABLES
_IMPLICIT_REQUIRED = IMPLICIT_VARIABLES[:3]
# Variables outside AZAUTH_* that change which token a request gets.
KEY_VARIABLES = (
    envvars.SYSTEM_OIDCREQUESTURI,
    envvars.AZURE_AUTHORITY_HOST,
    envvars.AZURE_IDENTITY_DISABLE_MULTITENANTAUTH,
)
_AZAUTH_PREFIX = envvars.AZAUTH_PREFIX
_HEX = frozenset("0123456789abcdef")
_KEY_LENGTH = 64
_MAX_ENTRY_BYTES = 256 * 1024
_POSIX = os.name == "posix"  # Windows reports 0o666 for private files: no mode check there
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_LOCK_POLL = (0.005, 0.01, 0.02, 0.05)


# ------------------------------------------------------------------------------------------------
# Where the cache is, and which configuration a request uses


def cache_dir(env: Mapping[str, str]) -> str:
    """``AZAUTH_CACHE_DIR``, else ``$XDG_CACHE_HOME/azauth``, else ``~/.cache/azauth``."""
    explicit = env.get(CACHE_DIR_ENV)
    if explicit:
        return explicit
    xdg = env.get(envvars.XDG_CACHE_HOME)
    if xdg:
        return os.path.join(xdg, "azauth")
    return os.path.join(_home(env), ".cache", "azauth")


def _home(env: Mapping[str, str]) -> str:
    return env.get(envvars.HOME) or env.get(envvars.USERPROFILE) or os.path.expanduser("~")


def find_config_file(config: str | None, env: Mapping[str, str], cwd: str) -> str | None:
    """Return the profile file a command would load (absolute), or ``None`` when it would use none.

    The search is :func:`agent.config.discovery.find_config_path` itself (import-light), so the
    cache keys the very file ``load_config`` reads.

    Raises:
        FileNotFoundError: ``config`` or ``AZAUTH_CONFIG`` names something that is not a file
            with a supported suffix (the command line reports the details).
    """
    from agent.config.discovery import find_config_path  # noqa: PLC0415

    named = config if config is not None else (env.get(CONFIG_ENV) or None)
    if named is not None:
        named = os.path.join(cwd, named)
    try:
        found = find_config_path(named, env, cwd)
    except Exception:  # noqa: BLE001 - a ConfigError; its import would cost the fast path
        raise FileNotFoundError(named) from None
    return None if found is None else os.path.abspath(os.path.join(cwd, found))


class ConfigIdentity:
    """Which configuration a request uses, as the cache key sees it.

    Attributes:
        path: the profile file's absolute path, or ``None`` for the implicit configuration.
        digest: SHA-256 (hex) of the file's bytes, or of the ``AZURESUBSCRIPTION_*`` values.
    """

    __slots__ = ("digest", "path")

    def __init__(self, path: str | None, digest: str) -> None:
        self.path = path
        self.digest = digest

    def __repr__(self) -> str:
        return f"ConfigIdentity(path={self.path!r}, digest={self.digest!r})"


def identify_config(config: str | None, env: Mapping[str, str], cwd: str) -> ConfigIdentity:
    """Find and hash the configuration a request with ``--config config`` would load.

    Raises:
        OSError: the file named by ``--config``/``AZAUTH_CONFIG`` is missing or unreadable.
        LookupError: there is no file and the required ``AZURESUBSCRIPTION_*`` variables are
            not all set (the command line reports it).
    """
    path = find_config_file(config, env, cwd)
    if path is None:
        values = [env.get(name, "") for name in IMPLICIT_VARIABLES]
        if not all(env.get(name) for name in _IMPLICIT_REQUIRED):
            raise LookupError("no profile file and no AZURESUBSCRIPTION_* connection")
        return ConfigIdentity(None, _sha256_json(values))
    return ConfigIdentity(path, sha256_hex(read_regular_file(path)))


# ------------------------------------------------------------------------------------------------
# Keys


class TokenRequest:
    """What the command line asked for, before the profile file is read.

    ``scopes`` empty means the connection's default scope; ``None`` means "not given".
    """

    __slots__ = ("config", "connection", "profile", "scopes", "tenant")

    def __init__(
        self,
        *,
        config: str | None = None,
        profile: str | None = None,
        connection: str | None = None,
        scopes: tuple[str, ...] = (),
        tenant: str | None = None,
    ) -> None:
        self.config = config
        self.profile = profile
        self.connection = connection
        self.scopes = scopes
        self.tenant = tenant

    def __repr__(self) -> str:
        return (
            f"TokenRequest(config={self.config!r}, profile={self.profile!r}, "
            f"connection={self.connection!r}, scopes={self.scopes!r}, tenant={self.tenant!r})"
        )


def selector_for(request: TokenRequest, identity: ConfigIdentity, env: Mapping[str, str]) -> str:
    """The SHA-256 (hex) over every input that decides which token ``request`` means."""
    variables = {
        name: value
        for name, value in env.items()
        if (name.startswith(_AZAUTH_PREFIX) and name != CACHE_DIR_ENV) or name in KEY_VARIABLES
    }
    return _sha256_json(
        {
            "format": FORMAT_VERSION,
            "config": [identity.path, identity.digest],
            "profile": request.profile,
            "connection": request.connection,
            "scopes": sorted(set(request.scopes)),
            "tenant": request.tenant,
            "env": variables,
        }
    )


def entry_key(selector: str, variable: str, system_access_token: str) -> str:
    """The entry key: the selector, the variable's name and a hash of System.AccessToken."""
    token_hash = sha256_hex(b"azauth system access token\0" + system_access_token.encode())
    return _sha256_json([selector, variable, token_hash])


def _sha256_json(value: object) -> str:
    return sha256_hex(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` in hex, with CPython's built-in hash (no OpenSSL load)."""
    digest: str = sha256(data).hexdigest()
    return digest


def is_key(text: str) -> bool:
    """Whether ``text`` is a key: 64 lower-case hex digits (a file name's stem)."""
    return len(text) == _KEY_LENGTH and _HEX.issuperset(text)


def _is_variable_name(text: str) -> bool:
    return text.isascii() and text.isidentifier()


# ------------------------------------------------------------------------------------------------
# Entries: what is stored, and whether it may be served


class CacheEntry:
    """A cached access token (treat as immutable).

    Attributes:
        details: the token and what is known about it.
        obtained_at: when it was requested (epoch seconds, this machine's clock).
        refresh_on: Entra's ``refresh_in`` hint as an epoch on this machine's clock, when it
            gave one.
        local_expires_on: when the token expires by this machine's clock (``obtained_at`` plus
            the issued lifetime, Entra's ``expires_in``); ``None`` when the lifetime was not
            known. ``details.expires_on`` keeps the server's value for consumers; freshness is
            judged on this one, so a skewed agent clock neither serves expired tokens nor
            refetches fresh ones (the refresh engine's rule, :mod:`agent.refresh`).
    """

    __slots__ = ("details", "local_expires_on", "obtained_at", "refresh_on")

    def __init__(
        self,
        details: TokenDetails,
        obtained_at: float,
        refresh_on: int | None = None,
        local_expires_on: float | None = None,
    ) -> None:
        self.details = details
        self.obtained_at = obtained_at
        self.refresh_on = refresh_on
        self.local_expires_on = local_expires_on

    def expires_locally(self) -> float:
        """When the token expires by this machine's clock (epoch seconds)."""
        if self.local_expires_on is not None:
            return self.local_expires_on
        return float(self.details.expires_on)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CacheEntry):
            return NotImplemented
        return (self.details, self.obtained_at, self.refresh_on, self.local_expires_on) == (
            other.details,
            other.obtained_at,
            other.refresh_on,
            other.local_expires_on,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable slots: not hashable

    def __repr__(self) -> str:
        return (
            f"CacheEntry({self.details!r}, obtained_at={self.obtained_at!r}, "
            f"refresh_on={self.refresh_on!r}, local_expires_on={self.local_expires_on!r})"
        )


def refresh_margin(lifetime: float) -> float:
    """Validity an entry must have left to be served: 5 minutes, or half a shorter lifetime."""
    return min(MAX_MARGIN, max(lifetime, 0.0) / 2)


def is_fresh(entry: CacheEntry, now: float) -> bool:
    """Whether ``entry`` may be served at ``now`` without asking Entra for a new token."""
    if entry.refresh_on is not None and now >= entry.refresh_on:
        return False
    expires_on = entry.expires_locally()
    return expires_on - now >= refresh_margin(expires_on - entry.obtained_at)


def is_usable(entry: CacheEntry, now: float) -> bool:
    """Whether ``entry`` may still be served when a refresh failed (at least MIN_USABLE left)."""
    return entry.expires_locally() - now >= MIN_USABLE


def encode_entry(entry: CacheEntry, key: str | None = None) -> bytes:
    """Serialise ``entry`` as JSON, recording the ``key`` it answers."""
    details = entry.details
    document = {
        "format": FORMAT_VERSION,
        "key": key,
        "access_token": details.access_token,
        "token_type": details.token_type,
        "expires_on": details.expires_on,
        "obtained_at": entry.obtained_at,
        "refresh_on": entry.refresh_on,
        "local_expires_on": entry.local_expires_on,
        "tenant": details.tenant,
        "scopes": list(details.scopes),
        "client_id": details.client_id,
        "subscription": details.subscription,
        "connection": details.connection,
        "profile": details.profile,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode_entry(data: bytes, key: str | None = None) -> CacheEntry | None:
    """Parse what :func:`encode_entry` wrote for ``key``; ``None`` for anything else.

    Never raises. An entry recording another key than ``key`` is ``None`` (not this request's).
    """
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != FORMAT_VERSION:
            return None
        if document.get("key") != key:
            return None
        strings = [
            document[name]
            for name in ("access_token", "token_type", "tenant", "client_id", "connection")
        ]
        strings.append(document["profile"])
        expires_on = document["expires_on"]
        obtained_at = document["obtained_at"]
        refresh_on = document.get("refresh_on")
        local_expires_on = document.get("local_expires_on")
        scopes = document["scopes"]
        subscription = document.get("subscription")
    except (ValueError, KeyError, TypeError, RecursionError):  # Recursion: nested too deeply
        return None
    valid = (
        all(isinstance(value, str) for value in strings)
        and bool(strings[0])
        and _is_int(expires_on)
        and isinstance(obtained_at, int | float)
        and not isinstance(obtained_at, bool)
        and (refresh_on is None or _is_int(refresh_on))
        and (local_expires_on is None or _is_finite_number(local_expires_on))
        and isinstance(scopes, list)
        and all(isinstance(scope, str) for scope in scopes)
        and (subscription is None or isinstance(subscription, str))
    )
    if not valid:
        return None
    access_token, token_type, tenant, client_id, connection, profile = strings
    details = TokenDetails(
        access_token=access_token,
        token_type=token_type,
        expires_on=expires_on,
        tenant=tenant,
        scopes=tuple(scopes),
        client_id=client_id,
        subscription=subscription,
        connection=connection,
        profile=profile,
    )
    return CacheEntry(
        details,
        float(obtained_at),
        refresh_on,
        float(local_expires_on) if local_expires_on is not None else None,
    )


def _is_finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ------------------------------------------------------------------------------------------------
# The directory


class TokenCache:
    """The cache directory: read, write, remove and lock entries.

    Reading never raises (an unreadable entry is a miss). Writing raises
    :class:`~agent.exceptions.OutputError`, which callers treat as "not cached".
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"TokenCache({self.directory!r})"

    def token_path(self, key: str) -> str:
        """The entry file of ``key``."""
        return self._path(key, ".token")

    def lock_path(self, key: str) -> str:
        """The lock file of ``key``."""
        return self._path(key, ".lock")

    def variable_path(self, selector: str) -> str:
        """The file naming the System.AccessToken variable of ``selector``."""
        return self._path(selector, ".var")

    def _path(self, key: str, suffix: str) -> str:
        if not is_key(key):
            raise ValueError("a cache key is 64 lowercase hex digits")
        return os.path.join(self.directory, f"{key}{suffix}")

    # -------------------------------------------------------------------------------- reading

    def read_variable(self, selector: str) -> str | None:
        """The variable holding System.AccessToken for ``selector``, if recorded."""
        data = self._read_private(self.variable_path(selector))
        if data is None:
            return None
        try:
            name = data.decode("ascii").strip()
        except UnicodeDecodeError:
            return None
        return name if _is_variable_name(name) else None

    def load(self, key: str) -> CacheEntry | None:
        """The entry of ``key``, or ``None`` (missing, unreadable, untrusted or malformed)."""
        data = self._read_private(self.token_path(key))
        return decode_entry(data, key) if data is not None else None

    # -------------------------------------------------------------------------------- writing

    def store(self, key: str, selector: str, variable: str, entry: CacheEntry) -> None:
        """Write ``entry`` under ``key`` and record ``variable`` for ``selector``.

        Raises:
            OutputError: a file could not be written.
            ValueError: ``variable`` is not a variable name.
        """
        from agent.outputs._atomic import atomic_write  # noqa: PLC0415 - the warm path never writes

        if not _is_variable_name(variable):
            raise ValueError("not an environment variable name")
        atomic_write(self.token_path(key), encode_entry(entry, key), mode=0o600)
        if self.read_variable(selector) != variable:
            atomic_write(self.variable_path(selector), variable.encode() + b"\n", mode=0o600)

    def remove(self, key: str) -> bool:
        """Delete the entry of ``key``; ``True`` if there was one (in a trusted directory)."""
        folder = self._open_directory()
        if folder is None:
            return False
        with folder:
            try:
                folder.unlink(os.path.basename(self.token_path(key)))
            except FileNotFoundError:
                return False
        return True

    def _open_directory(self, *, create: bool = False) -> TrustedDirectory | None:
        """The cache directory if it exists (or was created) and is trusted, else ``None``."""
        try:
            return trusted_directory(self.directory, create=create)
        except (OSError, UntrustedDirectoryError):
            return None

    def verify_directory(self) -> None:
        """Raise when the cache directory exists but is not trusted (a missing one is fine).

        Raises:
            OutputError: the directory, its owner and mode, and the fix.
        """
        try:
            trusted_directory(self.directory).close()
        except FileNotFoundError:
            return
        except UntrustedDirectoryError as exc:
            from agent.exceptions import OutputError  # noqa: PLC0415 - the warm path never gets here

            raise OutputError(
                f"the token cache directory is not safe: {exc} (or set {CACHE_DIR_ENV})"
            ) from None
        except OSError:
            return  # unreadable: reads miss, writes report their own error

    def _read_private(self, path: str) -> bytes | None:
        """Read a regular file of ours that others cannot read from the trusted directory."""
        folder = self._open_directory()
        if folder is None:
            return None
        with folder:
            return _read_private_at(folder, os.path.basename(path))

    def entries(self) -> list[tuple[str, CacheEntry]] | None:
        """Every readable token entry, as ``(key, entry)`` in key order (``azauth status``).

        A missing directory holds none; ``None`` when the directory cannot be listed. Files
        that are not azauth's entries (other names, unreadable or untrusted) are skipped.
        """
        try:
            names = sorted(os.listdir(self.directory))  # noqa: PTH208 - str paths, as elsewhere here
        except FileNotFoundError:
            names = []
        except OSError:
            return None
        found = []
        for name in names:
            key, _, suffix = name.partition(".")
            if suffix != "token" or not is_key(key):
                continue
            entry = self.load(key)
            if entry is not None:
                found.append((key, entry))
        return found

    def sweep(self, now: float) -> int:
        """Remove expired entries and lock/``.var`` files unused for :data:`SWEEP_AGE`.

        Best effort, never raises; touches only regular files with azauth's names that belong
        to the current user. Returns how many files were removed.
        """
        folder = self._open_directory()
        if folder is None:
            return 0
        with folder:
            return self._sweep_in(folder, now)

    def _sweep_in(self, folder: TrustedDirectory, now: float) -> int:
        try:
            names = folder.listdir()
        except OSError:
            return 0
        removed = 0
        for name in names:
            stem, dot, suffix = name.partition(".")
            if not dot or not is_key(stem) or suffix not in {"token", "lock", "var"}:
                continue
            try:
                info = folder.lstat(name)
                if not stat.S_ISREG(info.st_mode) or not owned_by_user(info):
                    continue
                if suffix == "token":
                    data = _read_private_at(folder, name)
                    entry = decode_entry(data, stem) if data is not None else None
                    stale = entry is None and now - info.st_mtime > SWEEP_AGE
                    if (entry is not None and entry.expires_locally() <= now) or stale:
                        folder.unlink(name)
                        removed += 1
                elif now - info.st_mtime > SWEEP_AGE:
                    folder.unlink(name)
                    removed += 1
            except OSError:
                continue
        return removed

    def ensure_directory(self) -> None:
        """Create the cache directory and its missing parents, each ``0700`` (via descriptors).

        Raises:
            OSError: a directory could not be created.
            UntrustedDirectoryError: a directory of the path is not trusted.
        """
        trusted_directory(self.directory, create=True).close()

    def lock(
        self,
        key: str,
        *,
        timeout: float = LOCK_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> CacheLock:
        """An exclusive lock on ``key`` across processes (``with cache.lock(key) as held:``)."""
        return CacheLock(self, key, timeout=timeout, sleep=sleep, monotonic=monotonic)


class CacheLock:
    """``fcntl.flock`` on ``<key>.lock``: one refresh per key at a time, across processes.

    Entering waits up to ``timeout`` seconds and returns whether the lock is held. It is not
    held after the timeout (``timed_out``), when the directory or lock file cannot be created
    (``error`` holds the OSError), or where ``fcntl`` does not exist (Windows); the caller then
    proceeds unlocked, which costs at most a duplicate refresh. The kernel releases the lock
    when the holder exits, even by SIGKILL.
    """

    def __init__(
        self,
        cache: TokenCache,
        key: str,
        *,
        timeout: float,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
    ) -> None:
        self._cache = cache
        self._path = cache.lock_path(key)
        self._timeout = timeout
        self._sleep = sleep
        self._monotonic = monotonic
        self._fd: int | None = None
        self.held = False
        self.timed_out = False
        self.error: OSError | None = None

    def __enter__(self) -> bool:
        try:
            import fcntl  # noqa: PLC0415 - POSIX only
        except ImportError:  # pragma: no cover - Windows
            return False
        fd = self._open_file()
        if fd is None:
            return False
        self._fd = fd
        deadline = self._monotonic() + self._timeout
        attempt = 0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self._monotonic() >= deadline:
                    self.timed_out = True
                    return False
                self._sleep(_LOCK_POLL[min(attempt, len(_LOCK_POLL) - 1)])
                attempt += 1
                continue
            self.held = True
            try:  # noqa: SIM105 - contextlib would cost the warm path its import
                os.utime(fd)  # a used lock is not swept
            except OSError:
                pass
            return True

    def _open_file(self) -> int | None:
        """Open (create) the lock file in the trusted directory; ``None`` with ``error`` set."""
        try:
            folder = trusted_directory(self._cache.directory, create=True)
        except UntrustedDirectoryError as exc:
            self.error = OSError(str(exc))
            return None
        except OSError as exc:
            self.error = exc
            return None
        try:
            with folder:
                fd = folder.open(
                    os.path.basename(self._path),
                    os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK,
                    0o600,
                )
        except OSError as exc:
            self.error = exc
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            self.error = OSError(f"{self._path} is not a regular file")
            return None
        return fd

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self.held:
            import fcntl  # noqa: PLC0415 - POSIX only

            fcntl.flock(fd, fcntl.LOCK_UN)
            self.held = False
        os.close(fd)


def owned_by_user(info: os.stat_result) -> bool:
    """Whether the file of ``info`` belongs to the current user (always true without uids)."""
    return not hasattr(os, "geteuid") or info.st_uid == os.geteuid()


def read_private(path: str, *, max_bytes: int = _MAX_ENTRY_BYTES) -> bytes | None:
    """The bytes of ``path`` if the cache may trust it (:func:`_read_private_at`), else ``None``.

    Its directory must be trusted (:mod:`agent._dirtrust`). Other stores of azauth's private
    files (the feeds' routing records, the profile cache) use the same rule.
    """
    directory, name = os.path.split(os.path.abspath(path))
    try:
        folder = trusted_directory(directory)
    except (OSError, UntrustedDirectoryError):
        return None
    with folder:
        return _read_private_at(folder, name, max_bytes=max_bytes)


def _read_private_at(
    folder: TrustedDirectory, name: str, *, max_bytes: int = _MAX_ENTRY_BYTES
) -> bytes | None:
    """Read ``name`` in ``folder`` if it is a regular file of ours others cannot read.

    Non-blocking open: a FIFO is refused at once instead of waiting for a writer. A file
    larger than ``max_bytes`` is refused too.
    """
    try:
        fd = folder.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (
            not stat.S_ISREG(info.st_mode)
            or not owned_by_user(info)
            or (_POSIX and info.st_mode & 0o077)
            or info.st_size > max_bytes
        ):
            return None
        chunks: list[bytes] = []
        size = min(info.st_size, max_bytes) + 1  # no 64 MiB buffer for a 1 KiB file
        while chunk := os.read(fd, size):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)
