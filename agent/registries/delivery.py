"""Delivery of ``docker_config`` outputs for the runner: exchanges, renewal times, rendering.

The runner acquires the Entra token of an ``auths``-mode output like any other access token;
this module exchanges it at each of the output's registries (:mod:`agent.registries.acr_client`),
keeps the ACR refresh tokens, tells the runner when a scope is due again because a refresh token
will expire (:func:`agent.registries.tokens.refresh_on`: 30 minutes or half its life ahead), renders
the merged ``config.json`` (:mod:`agent.outputs.docker_config`) and, for ``remove_on_exit``,
takes azauth's registries back out of it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from agent._http import HttpClient
from agent.exceptions import AzauthError, OutputError
from agent.jwt import unverified_claims
from agent.logs import get_logger
from agent.outputs._atomic import atomic_write

# The Docker config and ACR modules are imported by the methods that use them: a profile
# without docker_config outputs never needs them.
if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials import AccessTokenInfo

    from agent.clock import Clock
    from agent.config import Output, ResolvedProfile
    from agent.config.models import DockerConfigOutput
    from agent.outputs.docker_config import Entries
    from agent.registries.acr import RefreshToken
    from agent.retry import RetryPolicy

__all__ = ["RegistryDelivery"]

_log = get_logger("agent.registries.delivery")
_MAX_CONFIG_BYTES = 1024 * 1024
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class RegistryDelivery:
    """The ACR refresh tokens of one runner, by (connection, registry)."""

    def __init__(
        self, profile: ResolvedProfile, *, env: Mapping[str, str], clock: Clock, retry: RetryPolicy
    ) -> None:
        self._profile = profile
        self._env = env
        self._clock = clock
        self._retry = retry
        self._tokens: dict[tuple[str, str], RefreshToken] = {}
        self._due: dict[tuple[str, str], float] = {}
        # path -> the user's entries for our registries before our first write (remove_on_exit).
        self._originals: dict[str, Entries] = {}

    def due(self, connection: str, scope: str, when: float) -> float:
        """``when``, or earlier if a refresh token exchanged with ``scope``'s token is due."""
        return min(when, self._due.get((connection, scope), when))

    async def exchange(
        self,
        connection: str,
        tenant: str,
        outputs: Sequence[Output],
        tokens: Mapping[str, AccessTokenInfo],
        session: aiohttp.ClientSession | None,
    ) -> AzauthError | None:
        """Exchange the current Entra token of each ``auths``-mode output at its registries.

        Returns the first failure (each is logged); the outputs it concerns cannot be rendered.
        """
        first_error: AzauthError | None = None
        due: dict[tuple[str, str], float] = {}
        for output in outputs:
            if not output.exchanges_at_registries():
                continue
            scope = self._profile.scope_for(output)
            info = tokens.get(scope) if scope is not None else None
            if scope is None or info is None:
                continue
            from agent.registries.acr_client import exchange_refresh_token  # noqa: PLC0415
            from agent.registries.tokens import refresh_on  # noqa: PLC0415

            http = HttpClient(session=session, env=self._env, clock=self._clock, retry=self._retry)
            tid = unverified_claims(info.token).get("tid")
            for registry in output.registries_for(self._profile):
                try:
                    token = await exchange_refresh_token(
                        http,
                        registry,
                        tenant=tid if isinstance(tid, str) and tid else tenant,
                        access_token=info.token,
                        access_token_expires_on=int(info.expires_on),
                        now=self._clock.time(),
                    )
                except AzauthError as exc:
                    first_error = first_error or exc
                    self._tokens.pop((connection, registry), None)
                    _log.error("registry_exchange_failed", registry=registry, error=str(exc))
                    continue
                self._tokens[(connection, registry)] = token
                when = refresh_on(self._clock.time(), token.expires_on)
                due[(connection, scope)] = min(due.get((connection, scope), when), when)
        self._due.update(due)
        return first_error

    def render(self, connection: str, output: DockerConfigOutput) -> bytes:
        """The new content of ``output``'s file, merged into what is there now.

        Raises:
            ValueError: the existing file is not a Docker config, or a registry has no token.
            OutputError: the existing file cannot be read.
        """
        from agent.outputs.docker_config import render_docker_config, users_entries  # noqa: PLC0415

        registries = output.registries_for(self._profile)
        existing = _read_existing(output.path)
        if output.path not in self._originals:
            self._originals[output.path] = users_entries(existing, registries)
        if output.mode == "credHelpers":
            return render_docker_config(existing, cred_helpers=registries)
        tokens: dict[str, str] = {}
        for registry in registries:
            token = self._tokens.get((connection, registry))
            if token is None:
                raise ValueError(f"no refresh token for registry {registry}")
            tokens[registry] = token.token
        return render_docker_config(existing, identity_tokens=tokens)

    def restore(self, path: str) -> bool:
        """Take azauth's registries out of ``path`` if an output of ours merged into it.

        Returns ``True`` when the file was handled here (rewritten, or left alone because it
        is no longer a Docker config), ``False`` when the caller should delete it: not a
        docker_config file, or nothing of the user's is left in it.
        """
        registries = [
            host
            for output in self._profile.outputs
            if output.target == path
            for host in output.registries_for(self._profile)
        ]
        if not registries:
            return False
        from agent.outputs.docker_config import remove_registries  # noqa: PLC0415

        try:
            existing = _read_existing(path)
            originals = self._originals.get(path)
            remaining = (
                remove_registries(existing, registries, originals) if existing is not None else None
            )
            if remaining is None:
                return False
            atomic_write(path, remaining)
        except (AzauthError, ValueError) as exc:
            _log.warning("output_not_restored", path=path, error=str(exc))
        return True


def _read_existing(path: str) -> bytes | None:
    """The current bytes of a file an output merges into, or ``None`` when there is none.

    Only a regular file is read: a symbolic link is not followed (it would merge another
    file's content, and the write refuses links anyway) and a FIFO or device is not opened for
    reading (``O_NONBLOCK``: a FIFO without a writer must not hang the runner).

    Raises:
        OutputError: the file is a link, not a regular file, unreadable, or larger than 1 MiB.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):  # noqa: PTH114 - str paths
            raise OutputError(
                "the existing file is a symbolic link; refusing to merge", path=path
            ) from None
        raise OutputError(f"cannot read the existing file: {exc.strerror}", path=path) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputError(
                "the existing file is not a regular file; refusing to merge", path=path
            )
        with os.fdopen(os.dup(fd), "rb") as file:
            data = file.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise OutputError(f"cannot read the existing file: {exc.strerror}", path=path) from None
    finally:
        os.close(fd)
    if len(data) > _MAX_CONFIG_BYTES:
        raise OutputError("the existing file is larger than 1 MiB; refusing to merge", path=path)
    return data
