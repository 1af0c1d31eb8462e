"""The credential pool: one per profile, the only place credentials and HTTP sessions are built.

Every command that asks for tokens (``run``, ``exec``, ``serve``, ``token``, ``git-credential``,
``status --check``) and the token server borrow their credentials from a :class:`CredentialPool`,
so the profile's settings (``retry_deadline``, ``refresh_margin``) are wired once: every
credential of a pool shares its one ``aiohttp.ClientSession`` (built by :mod:`agent._http`) and
its :class:`agent.retry.RetryPolicy`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from agent.exceptions import ConfigError, UsageError
from agent.retry import RetryPolicy

if TYPE_CHECKING:
    import aiohttp

    from agent.clock import Clock
    from agent.config import Connection, ResolvedProfile, Settings
    from agent.credential import AzurePipelinesCredential

__all__ = ["ConnectionChoiceError", "CredentialPool", "choose_connection", "credential_for"]


class ConnectionChoiceError(UsageError):
    """The connection to use cannot be chosen (exit code USAGE, 2).

    Attributes:
        profile: the profile's name.
        name: the name asked for, or ``None`` when none was given and the profile has several.
        names: the profile's connections.
        summary: the message without its advice (what a command line rephrases).
    """

    def __init__(self, profile: str, name: str | None, names: Sequence[str]) -> None:
        self.profile = profile
        self.name = name
        self.names = tuple(names)
        listed = ", ".join(names) or "none"
        if name is not None:
            self.summary = (
                f"{name!r}: profile {profile!r} has no such connection (its connections: {listed})"
            )
            super().__init__(self.summary)
        else:
            self.summary = f"profile {profile!r} has {len(names)} connections ({listed})"
            super().__init__(f"{self.summary}: name the one to use")


def choose_connection(profile: ResolvedProfile, name: str | None) -> str:
    """The connection of ``profile`` named ``name``, or its only one when ``name`` is ``None``.

    Raises:
        ConnectionChoiceError: ``name`` is not one of the profile's connections, or it is ``None``
            and the profile has several.
        ConfigError: the profile has no connection.
    """
    names = list(profile.connections)
    if name is not None:
        if name not in profile.connections:
            raise ConnectionChoiceError(profile.name, name, names)
        return name
    if len(names) == 1:
        return names[0]
    if not names:
        raise ConfigError(
            f"profile {profile.name!r} has no connection",
            key_path=f"profiles.{profile.name}.connections",
            expected="the name of at least one connection",
        )
    raise ConnectionChoiceError(profile.name, None, names)


def credential_for(
    name: str, connection: Connection, env: Mapping[str, str], **options: Any
) -> AzurePipelinesCredential:
    """Return an :class:`AzurePipelinesCredential` for ``connection`` reading ``env``.

    A pool calls this for each connection it serves; use :class:`CredentialPool` rather than
    calling it directly, so that the profile's settings apply. ``options`` go to the credential
    (``session``, ``clock``, ``retry``, ``refresh_offset``...).

    Raises:
        ConfigError: ``SYSTEM_OIDCREQUESTURI`` or the system access token variable is missing,
            or a value of the connection is invalid (key path ``connections.NAME``).
    """
    from agent.credential import AzurePipelinesCredential  # noqa: PLC0415 - imports aiohttp
    from agent.envvalues import oidc_request_uri  # noqa: PLC0415

    if "oidc_request_uri" not in options:
        oidc_request_uri(env)  # the job environment first: a clear CONFIG error with a hint
    try:
        return AzurePipelinesCredential(
            tenant_id=connection.tenant_id,
            client_id=connection.client_id,
            service_connection_id=connection.service_connection_id,
            system_access_token=connection.system_access_token(env),
            authority=connection.authority_url(env),
            additionally_allowed_tenants=list(connection.additionally_allowed_tenants),
            env=env,
            **options,
        )
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc), key_path=f"connections.{name}") from None


class CredentialPool:
    """The credentials of a profile's connections, sharing one HTTP session and one policy.

    Credentials are built on first use (:meth:`credential`) or all at once (:meth:`build`),
    each with the profile's retry deadline (``settings.retry_deadline``, seconds, the budget of
    one acquisition's retries) and refresh margin (``settings.refresh_margin``, seconds). The
    session is created inside the running event loop on first use; :meth:`close` closes the
    credentials and the session unless the caller gave its own.

    Args:
        connections: the connections, by name (a profile's ``connections``).
        env: where credentials read ``SYSTEM_OIDCREQUESTURI``, the system access token variable,
            ``AZURE_AUTHORITY_HOST``, proxies and CA bundles.
        settings: the profile's settings; ``None`` for the defaults of
            :class:`agent.config.Settings` (a 120 s retry deadline, a 300 s refresh margin).
        clock: time source of the credentials.
        session: a caller-owned ``aiohttp.ClientSession`` (never closed here).
    """

    def __init__(
        self,
        connections: Mapping[str, Connection],
        *,
        env: Mapping[str, str],
        settings: Settings | None = None,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if settings is None:
            from agent.config import Settings  # noqa: PLC0415 - imports pydantic

            settings = Settings()
        self._connections = dict(connections)
        self._env = env
        self._clock = clock
        self._session = session
        self._owns_session = session is None
        #: The retry policy of every credential (and of the registry exchanges beside them).
        self.retry = RetryPolicy(deadline=settings.retry_deadline)
        self._refresh_offset = int(settings.refresh_margin)
        self._credentials: dict[str, AzurePipelinesCredential] = {}

    @classmethod
    def for_profile(
        cls,
        profile: ResolvedProfile,
        *,
        env: Mapping[str, str],
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> Self:
        """The pool of ``profile``: its connections with its settings."""
        return cls(
            profile.connections, env=env, settings=profile.settings, clock=clock, session=session
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The HTTP session every credential sends with (created on first use, in the loop)."""
        if self._session is None:
            from agent._http import new_session  # noqa: PLC0415 - imports aiohttp

            self._session = new_session()
        return self._session

    def credential(self, name: str) -> AzurePipelinesCredential:
        """The credential of connection ``name``, built on first use.

        Raises:
            KeyError: ``name`` is not a connection of the pool.
            ConfigError: as :func:`credential_for`.
        """
        credential = self._credentials.get(name)
        if credential is None:
            credential = credential_for(
                name,
                self._connections[name],
                self._env,
                session=self.session,
                retry=self.retry,
                clock=self._clock,
                refresh_offset=self._refresh_offset,
            )
            self._credentials[name] = credential
        return credential

    @property
    def credentials(self) -> dict[str, AzurePipelinesCredential]:
        """The credentials built so far, by connection name (a copy)."""
        return dict(self._credentials)

    def build(self) -> dict[str, AzurePipelinesCredential]:
        """Build every connection's credential now (a missing variable fails here, not later).

        Raises:
            ConfigError: as :func:`credential_for`.
        """
        return {name: self.credential(name) for name in self._connections}

    async def close(self) -> None:
        """Close every credential and, unless the caller owns it, the session. Idempotent."""
        credentials, self._credentials = self._credentials, {}
        for credential in credentials.values():
            await credential.close()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
        elif session is not None:
            self._session = session

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
