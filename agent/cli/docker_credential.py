"""``docker-credential-azauth``: a Docker credential helper handing out ACR refresh tokens.

Docker, skopeo, podman, buildah, crane, oras and helm run it for the registries a Docker
``config.json`` points at it (``"credHelpers": {"contoso.azurecr.io": "azauth"}``), with one
argument (the protocol of :mod:`agent.credential_helpers.docker`):

- ``get``: the server URL on stdin → ``{"ServerURL", "Username":
  "00000000-0000-0000-0000-000000000000", "Secret": <ACR refresh token>}``, exit 0. A
  registry the profile does not serve → ``credentials not found in native keychain``, exit 1
  (clients then go on anonymously). Any failure → one line on stdout, details on stderr, exit 1.
- ``list``: the profile's registries → user name, as JSON.
- ``store``: checks the request and keeps nothing (the credentials come from the connection).
- ``erase``: drops the cached refresh token of that registry; the next ``get`` exchanges anew.
- ``version``: ``docker-credential-azauth (azauth) VERSION``.

The profile is the one ``azauth token`` uses (``AZAUTH_CONFIG``, ``AZAUTH_PROFILE``,
``AZAUTH_CACHE_DIR``, discovery from the working directory). A warm ``get`` is answered by
:func:`agent.registries.tokens.warm_get` without importing this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

from agent.credential_helpers import docker as dc

__all__ = ["main"]


def main(argv: Sequence[str], *, stdin: bytes | None = None) -> int:
    """Run one helper operation; return the exit status (0, or 1 as the protocol requires).

    ``stdin`` is what the warm path already read from standard input, if anything. An
    unexpected exception is a bug: one line ``docker-credential-azauth: internal error: ...
    (please report)`` on stderr (secrets masked), never a traceback, exit 1.
    """
    try:
        return _main(argv, stdin)
    except BrokenPipeError:
        raise  # the entry point ends quietly
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug, never a traceback
        from agent._secrets import redact_text  # noqa: PLC0415

        detail = redact_text(str(exc)).replace("\n", " ").strip()
        print(
            f"{dc.HELPER_NAME}: internal error: {type(exc).__name__}"
            f"{': ' + detail if detail else ''} (please report)",
            file=sys.stderr,
        )
        return 1


def _main(argv: Sequence[str], stdin: bytes | None) -> int:
    if len(argv) != 1:
        return _fail(dc.USAGE)
    action = argv[0]
    if action not in dc.OPERATIONS:
        return _fail(dc.unknown_action(action))
    if action == "version":
        from agent._version import __version__  # noqa: PLC0415

        _out(f"{dc.HELPER_NAME} (azauth) {__version__}\n")
        return 0
    data = stdin if stdin is not None else _read_stdin(action)
    _configure_logging(os.environ)
    try:
        return _OPERATIONS[action](data, os.environ)
    except ValueError as exc:
        return _fail(str(exc))


def _store(data: bytes, env: Mapping[str, str]) -> int:
    del env
    dc.parse_store_request(data)  # checked as the protocol asks; nothing is kept
    return 0


def _read_stdin(action: str) -> bytes:
    if action == "list":
        return b""
    return dc.read_request(sys.stdin.buffer if sys.stdin is not None else None)


def _get(data: bytes, env: Mapping[str, str]) -> int:
    from agent.exceptions import AzauthError  # noqa: PLC0415
    from agent.registries import tokens as registry_tokens  # noqa: PLC0415
    from agent.registries.acr import ACR_USERNAME, is_acr_host  # noqa: PLC0415 - imports azure-core

    server_url = dc.read_server_url(data)
    try:
        registry = dc.registry_host(server_url)
    except ValueError:
        return _fail(dc.NOT_FOUND)
    try:
        target = registry_tokens.resolve_registry(registry, env)
    except registry_tokens.RegistryNotServedError:
        return _fail(dc.NOT_FOUND)
    except AzauthError as exc:
        if not is_acr_host(registry):
            # Not a registry of ours by name, and no usable profile: let the client go on
            # anonymously (Docker Hub pulls must not fail because azauth is unconfigured).
            return _fail(dc.NOT_FOUND)
        return _failed(registry, exc)
    try:
        details = registry_tokens.obtain_refresh_token(target, env)
    except AzauthError as exc:
        return _failed(registry, exc)
    _out(dc.render_get(server_url, ACR_USERNAME, details.access_token))
    return 0


def _failed(registry: str, exc: Exception) -> int:
    print(f"{dc.HELPER_NAME}: error: {exc}", file=sys.stderr)
    return _fail(f"azauth could not get credentials for {registry}: {exc}")


def _list(data: bytes, env: Mapping[str, str]) -> int:
    del data
    from agent.config import load_config  # noqa: PLC0415
    from agent.exceptions import ConfigError  # noqa: PLC0415
    from agent.registries.acr import ACR_USERNAME  # noqa: PLC0415

    try:
        profile = load_config(None, env=env).profile(None, env=env)
    except ConfigError as exc:
        print(f"{dc.HELPER_NAME}: error: {exc}", file=sys.stderr)
        _out(dc.render_list({}))
        return 0
    _out(dc.render_list(dict.fromkeys(profile.registries, ACR_USERNAME)))
    return 0


def _erase(data: bytes, env: Mapping[str, str]) -> int:
    from agent.registries import tokens as registry_tokens  # noqa: PLC0415

    server_url = dc.read_server_url(data)
    try:
        registry = dc.registry_host(server_url)
    except ValueError:
        return 0
    registry_tokens.forget_refresh_token(registry, env)
    return 0


def _configure_logging(env: Mapping[str, str]) -> None:
    from agent.logs import configure_logging  # noqa: PLC0415 - imports structlog

    del env
    configure_logging(fmt="auto", level="warning", stream=sys.stderr)


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _fail(message: str) -> int:
    _out(message + "\n")
    return 1


_OPERATIONS: dict[str, Callable[[bytes, Mapping[str, str]], int]] = {
    "get": _get,
    "list": _list,
    "store": _store,
    "erase": _erase,
}
