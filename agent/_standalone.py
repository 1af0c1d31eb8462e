"""Whether this process is the ``azauth`` command rather than a program using the library.

Stdlib only, imports nothing. The console scripts (:mod:`agent._entry`) call :func:`mark_command`
before anything else of azauth is imported; modules then leave out what only library users need:
:mod:`agent._azure_core` hands out stand-ins for azure-core's base classes (about 45 ms of
imports: azure-core drags ``email``, ``http.client``, ``xml`` and ``platform`` in), and
:mod:`agent.logs` keeps ``rich`` out of structlog. A program that imports ``agent`` (or runs
``agent.cli.main.main`` in its own process) is never marked: it gets the real azure-core classes.

The command also defers aiohttp's client trust store. ``import aiohttp`` builds two TLS contexts
at import time (``aiohttp.connector``: a verifying one and one that verifies nothing), and each
loads the whole system trust store (about 20 ms each with a full store). azauth never uses
them: every request it sends carries its own context (:func:`agent._http.ssl_context_from_env`,
which honours ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_DIR``). So in the command
those two contexts are built without loading any certificate: the store is loaded once, by
azauth. They then trust nothing, so a request that used one by mistake would be refused, never
let through. Only the thread importing aiohttp loads nothing meanwhile: a trust store loaded on
another thread at the same time (the prewarm of :mod:`agent._trust`) is loaded in full.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not from typing: this module imports nothing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

__all__ = ["client_trust_deferred", "is_command", "mark_command"]

_command = False
_deferred = False
_CONNECTOR = "aiohttp.connector"


def mark_command() -> None:
    """Record that this process is the ``azauth`` (or ``docker-credential-azauth``) command.

    Also arranges for ``aiohttp.connector``, if it is first imported after this, to build its
    default TLS contexts without loading a trust store (see the module docstring).
    """
    global _command  # noqa: PLW0603 - one fact about the whole process
    _command = True
    if _CONNECTOR not in sys.modules and not any(
        isinstance(finder, _ConnectorFinder) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _ConnectorFinder())


def is_command() -> bool:
    """Whether :func:`mark_command` was called in this process."""
    return _command


def client_trust_deferred() -> bool:
    """Whether aiohttp's default client contexts were built without a trust store (so empty)."""
    return _deferred


class _ConnectorFinder:
    """Finds ``aiohttp.connector`` through the other finders, then wraps its loader (once)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name != _CONNECTOR:
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None:
                spec.loader = _NoTrustStoreLoader(spec.loader)  # type: ignore[assignment] # duck-typed
                return spec
        return None


class _NoTrustStoreLoader:
    """Runs the real loader while ``ssl.SSLContext`` loads no default certificates."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        global _deferred  # noqa: PLW0603 - one fact about the whole process
        import _thread  # noqa: PLC0415 - built in
        import ssl  # noqa: PLC0415 - aiohttp imports it next anyway

        context = ssl.SSLContext
        names = ("load_default_certs", "set_default_verify_paths")
        own = {name: context.__dict__[name] for name in names if name in context.__dict__}
        importer = _thread.get_ident()
        for name in names:
            setattr(context, name, _load_nothing_here(getattr(context, name), importer))
        try:
            self._loader.exec_module(module)
        finally:
            for name in names:
                if name in own:
                    setattr(context, name, own[name])
                else:
                    delattr(context, name)
        _deferred = True


def _load_nothing_here(original: Any, importer: int) -> Any:
    """Stands in for ``original`` (a trust-store load) while aiohttp builds its contexts.

    Only in the thread importing aiohttp: another thread loading a trust store meanwhile (the
    prewarm of :mod:`agent._trust`) gets the real load.
    """
    import _thread  # noqa: PLC0415 - built in

    def load(self: object, *args: object, **kwargs: object) -> Any:
        if _thread.get_ident() == importer:
            return None
        return original(self, *args, **kwargs)

    return load
