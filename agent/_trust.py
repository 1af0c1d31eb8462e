"""TLS trust: the CA bundle the environment names, loaded once per version, ahead of need.

``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE`` (and ``SSL_CERT_DIR``) replace the system trust store,
as in curl, requests and OpenSSL; :func:`ssl_context_from_env` is the one place that reads them
(:mod:`agent._http` sends every request with its answer).

Loading a full trust store takes 15-20 ms, and OpenSSL does it without holding the GIL. So a
command about to import aiohttp calls :func:`prewarm` first: the context
:func:`ssl_context_from_env` will want is built on a thread while the imports run, and the first
request picks it up (waiting for it if it is not ready). Nothing else changes: the checks and
their errors still come from :func:`ssl_context_from_env` when it is called; a load that failed on
the thread is done again there, so the same exception comes from the same call.

Stdlib only at import time (``aiohttp.connector`` only inside :func:`system_context`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from agent import envvars
from agent._standalone import client_trust_deferred, is_command
from agent.exceptions import ConfigError

__all__ = ["prewarm", "ssl_context_from_env", "system_context"]

_Version = tuple[int, int] | None
_Key = tuple[str | None, str | None, _Version, _Version]


def _locations(env: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """The variable naming the CA file, the CA file and the CA directory (``None``: unset)."""
    file_variable = (
        envvars.SSL_CERT_FILE if env.get(envvars.SSL_CERT_FILE) else envvars.REQUESTS_CA_BUNDLE
    )
    return file_variable, env.get(file_variable) or None, env.get(envvars.SSL_CERT_DIR) or None


def ssl_context_from_env(env: Mapping[str, str]) -> ssl.SSLContext:
    """The TLS context: the CA bundle named by the environment, else the system store.

    Contexts are shared per (file, directory) as they are on disk now: loading a trust store
    costs milliseconds, and a profile with twenty connections would otherwise load it twenty
    times; a bundle rewritten in place (new size or modification time) is loaded again.

    Raises:
        ConfigError: the file or directory is missing, of the wrong kind, or not loadable;
            the message names the variable.
    """
    file_variable, cafile, capath = _locations(env)
    _check_ca_location(file_variable, cafile, want_dir=False)
    _check_ca_location(envvars.SSL_CERT_DIR, capath, want_dir=True)
    try:
        return _ssl_context(cafile, capath, _version(cafile), _version(capath))
    except (OSError, ssl.SSLError, ValueError) as exc:
        named = f"{file_variable}={cafile!r}" if cafile else f"SSL_CERT_DIR={capath!r}"
        raise ConfigError(
            f"environment variable {named}: the CA bundle cannot be loaded "
            f"({getattr(exc, 'reason', None) or exc.__class__.__name__})",
            expected=_CA_EXPECTED,
        ) from None


_CA_EXPECTED = (
    "a PEM file of CA certificates (SSL_CERT_FILE / REQUESTS_CA_BUNDLE) or a directory of hashed "
    "certificates (SSL_CERT_DIR); unset the variable to use the system trust store (a stopped "
    "`azauth emulator --tls` deletes its CA)"
)


def _location_problem(path: str | None, *, want_dir: bool) -> str | None:
    """What is wrong with a CA file or directory, or None (also when it is unset)."""
    if path is None:
        return None
    location = Path(path)
    if not location.exists():
        return "does not exist"
    if want_dir and not location.is_dir():
        return "is not a directory"
    if not want_dir and location.is_dir():
        return "is a directory, not a file (a directory belongs in SSL_CERT_DIR)"
    return None


def _check_ca_location(variable: str, path: str | None, *, want_dir: bool) -> None:
    """Name the variable when its CA file or directory is missing or of the wrong kind."""
    problem = _location_problem(path, want_dir=want_dir)
    if problem is not None:
        raise ConfigError(
            f"environment variable {variable}={path!r}: {problem}", expected=_CA_EXPECTED
        )


def _version(path: str | None) -> _Version:
    if path is None:
        return None
    try:
        info = Path(path).stat()
    except OSError:
        return None  # let create_default_context report the missing file
    return (info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=8)
def _ssl_context(
    cafile: str | None,
    capath: str | None,
    file_version: _Version,
    dir_version: _Version,
) -> ssl.SSLContext:
    if cafile is None and capath is None:
        return system_context()
    prewarmed = _take((cafile, capath, file_version, dir_version))
    if prewarmed is not None:
        return prewarmed
    return ssl.create_default_context(cafile=cafile, capath=capath)


def system_context() -> ssl.SSLContext:
    """The system trust store, loaded once per process.

    ``import aiohttp`` already built a default context (``ssl.create_default_context()`` plus
    ALPN ``http/1.1``): when the process sets neither ``SSL_CERT_FILE`` nor ``SSL_CERT_DIR``
    (which OpenSSL reads there), that context trusts exactly what a new one would, so it is
    reused rather than loading the store a third time (about 20 ms with a full store). Any
    other case, or an aiohttp without that context, gets a new one (the prewarmed one, if
    :func:`prewarm` built it); so does the ``azauth`` command, where aiohttp's contexts were
    built empty (:mod:`agent._standalone`).
    """
    if not _own_system_context():
        import aiohttp.connector  # noqa: PLC0415 - imported with aiohttp already

        context = getattr(aiohttp.connector, "_SSL_CONTEXT_VERIFIED", None)
        if (
            isinstance(context, ssl.SSLContext)
            and context.verify_mode == ssl.CERT_REQUIRED
            and context.check_hostname
        ):
            return context
    prewarmed = _take((None, None, None, None))
    return prewarmed if prewarmed is not None else ssl.create_default_context()


def _own_system_context() -> bool:
    """Whether :func:`system_context` builds its own context rather than reuse aiohttp's."""
    return bool(
        os.environ.get(envvars.SSL_CERT_FILE)
        or os.environ.get(envvars.SSL_CERT_DIR)
        or client_trust_deferred()
    )


def _own_system_context_ahead() -> bool:
    """Whether :func:`system_context` will build its own context, asked before aiohttp's import.

    In the command, ``aiohttp.connector`` imported after :func:`agent._standalone.mark_command`
    builds its contexts empty, so azauth loads the system store itself.
    """
    return _own_system_context() or (is_command() and _CONNECTOR not in sys.modules)


_CONNECTOR = "aiohttp.connector"


class _Prewarm:
    """One context being built on a thread for one key; :meth:`result` waits for it.

    Not a daemon thread: a process ending before its first request waits for the load (a few
    milliseconds) rather than exit while OpenSSL is still parsing certificates on it.
    """

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.context: ssl.SSLContext | None = None
        self._thread = threading.Thread(target=self._load, name="azauth-trust")
        self._thread.start()

    def _load(self) -> None:
        cafile, capath, _, _ = self.key
        # A failure leaves no context: the caller loads again and raises the error itself.
        with contextlib.suppress(Exception):
            self.context = ssl.create_default_context(cafile=cafile, capath=capath)

    def result(self) -> ssl.SSLContext | None:
        self._thread.join()
        return self.context


_prewarm: _Prewarm | None = None
_prewarm_lock = threading.Lock()


def prewarm(env: Mapping[str, str]) -> None:
    """Start building, on a thread, the context ``ssl_context_from_env(env)`` will return.

    For the ``azauth`` command, before it imports aiohttp. Does nothing when the variables are
    wrong (:func:`ssl_context_from_env` reports that when it is called), when the system store
    would be aiohttp's own context, or when a prewarm was already started. Never raises.
    """
    global _prewarm  # noqa: PLW0603 - one load ahead per process
    try:
        key = _prewarm_key(env)
    except (OSError, ValueError):  # e.g. a directory it may not search: reported when called
        return
    if key is None:
        return
    with _prewarm_lock:
        if _prewarm is None:
            _prewarm = _Prewarm(key)


def _prewarm_key(env: Mapping[str, str]) -> _Key | None:
    """The key :func:`ssl_context_from_env` will look up, or None when there is none to load."""
    _, cafile, capath = _locations(env)
    if _location_problem(cafile, want_dir=False) or _location_problem(capath, want_dir=True):
        return None
    if cafile is None and capath is None and not _own_system_context_ahead():
        return None  # system_context() will reuse aiohttp's import-time context
    return (cafile, capath, _version(cafile), _version(capath))


def _take(key: _Key) -> ssl.SSLContext | None:
    """The prewarmed context if it was built for ``key`` (waiting for it), once; else None."""
    global _prewarm  # noqa: PLW0603 - one load ahead per process
    with _prewarm_lock:
        found = _prewarm
        if found is None or found.key != key:
            return None
        _prewarm = None
    return found.result()
