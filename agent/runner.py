"""``azauth run``: acquire every token of a profile concurrently, deliver it, keep it fresh.

The runner decides *when*; the credential decides *how*. For each connection of the profile it
works out what the outputs need (access tokens per scope, the OIDC token itself), acquires those
concurrently under a bounded semaphore (one OIDC request shared per connection), and writes every
output atomically. Every token is an item of the refresh engine (:mod:`agent.refresh`), with its
own state and schedule: it is written to its outputs as soon as it arrives, and in watch mode
renewed and retried by the engine's rules; a failure keeps the previous files intact.

Contracts:
- a failed acquisition or write never empties, truncates or removes an existing output;
- one connection failing does not stop the others (unless ``fail_fast``);
- stdout receives only pipeline logging commands; everything else goes to the log (stderr);
- time comes from the injected clock; sleeping is the only way the runner waits (no polling).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self, TextIO

from agent._secrets import server_text
from agent.clock import Clock, SystemClock
from agent.connections import credential_for
from agent.credential import AzurePipelinesCredential, OidcToken
from agent.exceptions import (
    AuthenticationError,
    AzauthError,
    ConfigError,
    ExitCode,
    OutputError,
)
from agent.feeds import FEED_OUTPUT_KINDS
from agent.feeds.outputs import feed_files
from agent.feeds.writer import MergedNpmrc
from agent.logs import get_logger
from agent.outputs._atomic import atomic_write, remove_output
from agent.outputs.env_file import UNSETTING_DIALECTS, render_env_file
from agent.outputs.fields import TokenFields
from agent.outputs.pipeline_variables import render_pipeline_variables
from agent.outputs.presets import competing_variables, resolve_variables
from agent.outputs.token_file import render_federated_token_file, render_token_file
from agent.refresh import (
    Acquired,
    Item,
    ItemState,
    RefreshEngine,
    RefreshPolicy,
    acquired_access,
    acquired_oidc,
)
from agent.registry_delivery import RegistryDelivery
from agent.retry import RetryPolicy

if TYPE_CHECKING:
    import aiohttp
    from azure.core.credentials import AccessTokenInfo

    from agent.config import Connection, Output, ResolvedProfile

__all__ = ["ConnectionReport", "RunReport", "Runner", "plan_connection"]

_log = get_logger("agent.runner")

# Fields whose value comes from an access token: an output naming one needs a token for its scope.
_ACCESS_TOKEN_FIELDS = frozenset({"access_token", "token_type", "expires_on", "expires_at"})
# After the first delivery, the engine does the retrying: one HTTP attempt per refresh attempt.
_SINGLE_ATTEMPT = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class ConnectionPlan:
    """What one connection's outputs need: access-token scopes and whether the OIDC token is."""

    name: str
    connection: Connection
    outputs: tuple[Output, ...]
    scopes: tuple[str, ...]
    needs_oidc: bool


def _needs_access_token(output: Output) -> bool:
    if output.kind == "token_file" or output.kind in FEED_OUTPUT_KINDS:
        return True
    if output.kind == "docker_config":
        return output.mode == "auths"  # its Entra token is exchanged at each registry
    if output.kind in ("env_file", "pipeline_variables"):
        return bool(_ACCESS_TOKEN_FIELDS & set(output.variables.values()))
    return False


def _needs_oidc(output: Output, profile: ResolvedProfile) -> bool:
    if output.kind == "federated_token_file":
        return True
    if output.kind == "env_file":
        return output.needs_federated_token_file or "oidc_token" in output.variables.values()
    if output.kind == "pipeline_variables":
        assert output.connection is not None
        uses_file = output.preset is not None or "federated_token_file" in output.variables.values()
        return "oidc_token" in output.variables.values() or (
            uses_file and profile.federated_token_file_for(output.connection) is not None
        )
    return False


def plan_connection(profile: ResolvedProfile, name: str) -> ConnectionPlan:
    """Work out what connection ``name`` of ``profile`` must acquire for its outputs.

    A connection without outputs still acquires its default scope, so ``azauth run`` with an
    implicit (environment-only) profile proves the identity works.
    """
    connection = profile.connections[name]
    outputs = tuple(o for o in profile.outputs if o.connection == name)
    scopes: dict[str, None] = {}
    for output in outputs:
        if _needs_access_token(output):
            scope = profile.scope_for(output)
            assert scope is not None
            scopes[scope] = None
    needs_oidc = any(_needs_oidc(o, profile) for o in outputs)
    if not outputs:
        scopes[connection.default_scope] = None
    return ConnectionPlan(name, connection, outputs, tuple(scopes), needs_oidc)


@dataclass
class ConnectionReport:
    """What happened to one connection: tokens held, files written, the last error."""

    name: str
    tokens: dict[str, AccessTokenInfo] = field(default_factory=dict)
    oidc: OidcToken | None = None
    acquired: dict[str, float] = field(default_factory=dict)  # item key -> when (epoch)
    delivered: dict[str, list[str]] = field(default_factory=dict)  # item key -> outputs
    written: list[str] = field(default_factory=list)
    error: AzauthError | None = None
    expected_outputs: int = 0
    items: dict[str, ItemState] = field(default_factory=dict)  # item key -> engine state

    @property
    def ok(self) -> bool:
        """True when no error is outstanding and every output was delivered."""
        return self.error is None


@dataclass
class RunReport:
    """The outcome of a run: one report per connection."""

    connections: list[ConnectionReport]
    monotonic: float | None = None  # the engine's clock when the report was taken

    @property
    def exit_code(self) -> ExitCode:
        """OK; PARTIAL when some connections delivered; else the failures' common code."""
        failed = [c for c in self.connections if not c.ok]
        if not failed:
            return ExitCode.OK
        if len(failed) < len(self.connections):
            return ExitCode.PARTIAL
        codes = {c.error.exit_code for c in failed if c.error is not None}
        return codes.pop() if len(codes) == 1 else ExitCode.AUTH


class Runner:
    """Delivers one resolved profile's tokens.

    Args:
        profile: the resolved profile.
        env: environment to read pipeline variables from (``SYSTEM_OIDCREQUESTURI``, the system
            access token variable, ``AZURE_AUTHORITY_HOST``, proxies, CA bundles).
        clock: time source.
        stdout: where pipeline logging commands go.
        session: an ``aiohttp.ClientSession`` shared by every credential (created if omitted).
        rng: jitter source for watch-mode backoff.
    """

    def __init__(
        self,
        profile: ResolvedProfile,
        *,
        env: Mapping[str, str],
        clock: Clock | None = None,
        stdout: TextIO | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.profile = profile
        self._env = env
        self._clock = clock or SystemClock()
        self._stdout = stdout if stdout is not None else sys.stdout
        self._session = session
        self._owns_session = session is None
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        settings = profile.settings
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._retry = RetryPolicy(deadline=settings.retry_deadline)
        self._plans = [plan_connection(profile, name) for name in profile.connections]
        self._credentials: dict[str, AzurePipelinesCredential] = {}
        self.reports = {plan.name: ConnectionReport(plan.name) for plan in self._plans}
        for plan in self._plans:
            self.reports[plan.name].expected_outputs = len(plan.outputs)
        self._written: dict[str, None] = {}
        # docker_config outputs: their ACR refresh tokens and when those are due again.
        self._registries = RegistryDelivery(profile, env=env, clock=self._clock, retry=self._retry)
        self._merged: dict[str, str] = {}  # npmrc path -> the connection whose block is there
        self._stdout_lock = asyncio.Lock()
        self._output_locks: dict[str, asyncio.Lock] = {}
        self._tokenless_errors: dict[str, AzauthError] = {}
        self._permanent = asyncio.Event()
        self._watching = False
        self._failing_outputs: frozenset[str] | None = None
        self._on_summary: Callable[[RunReport], None] | None = None
        self.engine = RefreshEngine(
            self._clock,
            RefreshPolicy(refresh_margin=settings.refresh_margin),
            rng=self._rng,
            on_change=self._item_changed,
            on_permanent=lambda _item: self._permanent.set(),
        )
        self._items = {plan.name: self._make_items(plan) for plan in self._plans}
        # Set by watch() once the first delivery is done, so supervisors (azauth exec) can
        # start their command only then.
        self.first_report: RunReport | None = None
        self.delivered = asyncio.Event()

    # ----------------------------------------------------------------------------------------
    # Lifecycle

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every credential and the shared session."""
        for credential in self._credentials.values():
            await credential.close()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def written_paths(self) -> list[str]:
        """Every file this runner has written, in first-write order."""
        return list(self._written)

    def remove_outputs(self) -> list[str]:
        """Delete every file this runner wrote (``remove_on_exit``); return the removed ones.

        A docker_config file only loses azauth's registries (deleted when nothing else is left).
        From a merged npmrc only this runner's lines are removed.
        """
        return [
            path
            for path in self._written
            if (
                MergedNpmrc.remove(path, self._merged[path])
                if path in self._merged
                else not self._registries.restore(path) and remove_output(path)
            )
        ]

    # ----------------------------------------------------------------------------------------
    # One pass

    async def run_once(self) -> RunReport:
        """Acquire every token and write every output once; return what happened.

        With ``fail_fast``, the first failing connection cancels the others.
        """
        tasks = {
            plan.name: asyncio.create_task(self._deliver_first(plan), name=f"deliver:{plan.name}")
            for plan in self._plans
        }
        if self.profile.settings.fail_fast:
            pending = set(tasks.values())
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(not self.reports[t.get_name().split(":", 1)[1]].ok for t in done):
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
        else:
            await asyncio.gather(*tasks.values())
        return RunReport([self.reports[plan.name] for plan in self._plans])

    async def _deliver_first(self, plan: ConnectionPlan) -> None:
        """First attempt of every item of ``plan``, concurrently; each delivered on arrival."""
        report = self.reports[plan.name]
        try:
            await asyncio.gather(
                *(self.engine.attempt(item) for item in self._items[plan.name]),
                self._deliver_tokenless(plan),
            )
        except asyncio.CancelledError:
            report.error = report.error or _cancelled(plan.name)
            raise
        for item in self._items[plan.name]:
            if item.state.error is not None:
                _log.error(
                    "connection_failed",
                    connection=plan.name,
                    scope=item.key,
                    error=str(item.state.error),
                )

    async def _deliver_tokenless(self, plan: ConnectionPlan) -> None:
        """Write, once, the outputs that show no token (a credHelpers Docker config, ids)."""
        outputs = [o for o in plan.outputs if not _item_keys(o, self.profile)]
        if not outputs:
            return
        try:
            await self._write_outputs(plan, outputs)
            await self._print_pipeline_variables(plan, outputs)
        except AzauthError as exc:
            self._tokenless_errors[plan.name] = exc
            self._set_error(plan.name)

    def report(self) -> RunReport:
        """What every connection holds now (tokens, outputs written, outstanding errors)."""
        return RunReport([self.reports[plan.name] for plan in self._plans], self._clock.monotonic())

    def all_fresh(self) -> bool:
        """True when every output holds an unexpired token.

        A failing renewal of a token that is still valid does not count against it.
        """
        now = self._clock.monotonic()
        for plan in self._plans:
            report = self.reports[plan.name]
            for item in self._items[plan.name]:
                remaining = item.state.remaining(now)
                if remaining is None or remaining <= 0 or item.state.undelivered:
                    return False
            if len(report.written) < len(plan.outputs):
                return False
        return True

    # ----------------------------------------------------------------------------------------
    # Watch mode

    async def watch(
        self, stop: asyncio.Event, *, on_summary: Callable[[RunReport], None] | None = None
    ) -> RunReport:
        """Deliver once, then keep every output fresh until ``stop`` is set.

        After the first delivery, :attr:`first_report` holds its report and :attr:`delivered`
        is set. ``on_summary`` receives the report after the first delivery and whenever the
        set of failing outputs changes. Returns when ``stop`` is set, or at the first failure
        (first delivery) or permanent failure (later) with ``fail_fast``.
        """
        self._on_summary = on_summary
        report = await self.run_once()
        self.first_report = report
        self.delivered.set()
        if self.profile.settings.fail_fast and report.exit_code != ExitCode.OK:
            return report
        self._watching = True
        self._failing_outputs = None
        self._maybe_summary()
        for credential in self._credentials.values():
            credential.use_retry_policy(_SINGLE_ATTEMPT)
        items = [item for plan in self._plans for item in self._items[plan.name]]
        engine = asyncio.create_task(self.engine.run(items), name="refresh-engine")
        stopper = asyncio.create_task(stop.wait())
        waiters: list[asyncio.Future[Any]] = [engine, stopper]
        if self.profile.settings.fail_fast:
            waiters.append(asyncio.ensure_future(self._permanent.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if engine.done():  # the engine never ends on its own: surface why it did
                engine.result()
                raise AssertionError("the refresh engine stopped")
        finally:
            self._watching = False
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return self.report()

    def _set_error(self, connection: str) -> None:
        """The connection's outstanding error: its first failing token's, else an output's."""
        self.reports[connection].error = next(
            (i.state.error for i in self._items[connection] if i.state.error is not None),
            self._tokenless_errors.get(connection),
        )

    def _item_changed(self, item: Item) -> None:
        self._set_error(item.connection)
        if self._watching:
            self._maybe_summary()

    def _maybe_summary(self) -> None:
        """Hand the report to ``on_summary`` when the set of failing outputs changed."""
        failing = frozenset(self._failing_output_labels())
        if failing == self._failing_outputs:
            return
        self._failing_outputs = failing
        if self._on_summary is not None:
            self._on_summary(self.report())

    def _failing_output_labels(self) -> list[str]:
        labels = []
        for plan in self._plans:
            states = {item.key: item.state for item in self._items[plan.name]}
            for output in plan.outputs:
                keys = _item_keys(output, self.profile)
                if any(states[k].error is not None for k in keys if k in states):
                    labels.append(_output_label(output))
            if not plan.outputs and any(s.error is not None for s in states.values()):
                labels.append(plan.name)
        return labels

    # ----------------------------------------------------------------------------------------
    # Acquisition

    def _credential(self, plan: ConnectionPlan) -> AzurePipelinesCredential:
        credential = self._credentials.get(plan.name)
        if credential is None:
            if self._session is None:
                import aiohttp  # noqa: PLC0415 - created once, inside the running loop

                self._session = aiohttp.ClientSession(trust_env=False)
            credential = credential_for(
                plan.name,
                plan.connection,
                self._env,
                session=self._session,
                retry=self._retry,
                clock=self._clock,
                refresh_offset=int(self.profile.settings.refresh_margin),
            )
            self._credentials[plan.name] = credential
        return credential

    def _make_items(self, plan: ConnectionPlan) -> list[Item]:
        """One engine item per scope of ``plan``, and one for its OIDC token if needed."""
        items = [
            Item(
                plan.name,
                scope,
                self._fetcher(plan, scope),
                self._deliverer(plan, scope),
                due=self._registry_due(plan.name, scope),
            )
            for scope in plan.scopes
        ]
        if plan.needs_oidc:
            items.append(
                Item(plan.name, "oidc", self._fetcher(plan, "oidc"), self._deliverer(plan, "oidc"))
            )
        for item in items:
            self.engine.add(item)
            self.reports[plan.name].items[item.key] = item.state
        return items

    def _registry_due(self, connection: str, scope: str) -> Callable[[float], float]:
        """The renewal of ``scope``'s token, moved earlier for an ACR refresh token due sooner.

        :meth:`RegistryDelivery.due` speaks wall-clock time; the engine's schedules are monotonic.
        """

        def due(next_at: float) -> float:
            wall = self._registries.due(connection, scope, math.inf)
            if math.isinf(wall):
                return next_at
            return min(next_at, self._clock.monotonic() + (wall - self._clock.time()))

        return due

    def _fetcher(self, plan: ConnectionPlan, key: str) -> Callable[[], Awaitable[Acquired]]:
        async def fetch() -> Acquired:
            try:
                credential = self._credential(plan)
                async with self._semaphore:
                    if key == "oidc":
                        token = await credential.get_oidc_token(force=True)
                    else:
                        info = await credential.request_token(key)
            except ValueError as exc:
                raise ConfigError(str(exc), key_path=f"connections.{plan.name}") from None
            now = self._clock.monotonic()
            if key == "oidc":
                return acquired_oidc(token, now)
            return acquired_access(info, now, self._clock.time())

        return fetch

    def _deliverer(self, plan: ConnectionPlan, key: str) -> Callable[[Acquired], Awaitable[None]]:
        async def deliver(acquired: Acquired) -> None:
            report = self.reports[plan.name]
            if key == "oidc":
                report.oidc = acquired.value
            else:
                report.tokens[key] = acquired.value
            report.acquired[key] = self._clock.time()
            held = {item.key for item in self._items[plan.name] if item.state.held is not None}
            ready = [
                output
                for output in plan.outputs
                if key in (keys := _item_keys(output, self.profile)) and set(keys) <= held
            ]
            await self._write_outputs(plan, ready)
            await self._print_pipeline_variables(plan, ready)

        return deliver

    # ----------------------------------------------------------------------------------------
    # Delivery

    def _fields(self, plan: ConnectionPlan, output: Output) -> TokenFields:
        report = self.reports[plan.name]
        connection = plan.connection
        scope = self.profile.scope_for(output)
        info = report.tokens.get(scope) if scope is not None else None
        federated = None
        if output.kind == "env_file":
            federated = output.effective_federated_token_path
        elif output.kind == "pipeline_variables":
            assert output.connection is not None
            federated = self.profile.federated_token_file_for(output.connection)
        return TokenFields.build(
            access_token=info.token if info is not None else None,
            expires_on=info.expires_on if info is not None else None,
            token_type=getattr(info, "token_type", "Bearer") if info is not None else "Bearer",
            scope=scope,
            tenant_id=connection.tenant_id,
            client_id=connection.client_id,
            subscription_id=connection.subscription_id,
            service_connection_id=connection.service_connection_id,
            authority=connection.authority_url(self._env),
            cloud=connection.cloud,
            oidc_token=report.oidc.token if report.oidc is not None else None,
            federated_token_file=_absolute(federated) if federated else None,
        )

    async def _write_outputs(
        self, plan: ConnectionPlan, outputs: list[Output] | tuple[Output, ...]
    ) -> None:
        """Write every file output in ``outputs``; raise the first failure after trying all.

        Rendering is done here; the writes (each with two fsyncs) run in worker threads, so
        they overlap one another and never stall the event loop other connections use.
        """
        # docker_config outputs first trade the Entra token at their registries.
        exchanged = await self._registries.exchange(
            plan.name,
            plan.connection.tenant_id,
            outputs,
            self.reports[plan.name].tokens,
            self._session,
        )
        results = await asyncio.gather(
            *(self._write_output(plan, output) for output in outputs),
            return_exceptions=True,
        )
        first_error: AzauthError | None = exchanged
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, AzauthError):
                    raise result
                first_error = first_error or result
        if first_error is not None:
            raise first_error

    async def _write_output(self, plan: ConnectionPlan, output: Output) -> None:
        """Render and write one output; one writer per output at a time, newest tokens last."""
        if output.kind == "pipeline_variables":
            return
        label = output.path
        lock = self._output_locks.setdefault(label, asyncio.Lock())
        async with lock:
            try:
                # Rendered inside the lock: whoever writes last writes the newest tokens.
                files = self._render_files(plan, output)
                await asyncio.to_thread(_write_files, files)
            except AzauthError as exc:
                _log.error("output_failed", connection=plan.name, path=label, error=str(exc))
                raise
        for path, data in files:
            self._written[path] = None
            if isinstance(data, MergedNpmrc):
                self._merged[path] = data.owner
        self._record(plan, output, label)
        _log.debug("output_written", connection=plan.name, path=label)

    def _render_files(
        self, plan: ConnectionPlan, output: Output
    ) -> list[tuple[str, bytes | MergedNpmrc]]:
        """The files one output consists of, in the order they must be written.

        Raises:
            OutputError: a value the output cannot hold (named, never shown).
        """
        assert output.kind != "pipeline_variables"
        try:
            return self._render(plan, output)
        except ValueError as exc:
            raise OutputError(str(exc), path=output.path) from None

    def _render(
        self, plan: ConnectionPlan, output: Output
    ) -> list[tuple[str, bytes | MergedNpmrc]]:
        report = self.reports[plan.name]
        if output.kind == "federated_token_file":
            assert report.oidc is not None
            return [(output.path, render_federated_token_file(report.oidc.token))]
        if output.kind == "docker_config":
            return [(output.path, self._registries.render(plan.name, output))]
        fields = self._fields(plan, output)
        if output.kind == "token_file":
            return [(output.path, render_token_file(fields, output.format))]
        if output.kind in FEED_OUTPUT_KINDS:
            return feed_files(output, fields.access_token, self.profile.feeds_for(output))
        assert output.kind == "env_file"
        files: list[tuple[str, bytes | MergedNpmrc]] = []
        federated = output.effective_federated_token_path
        if federated is not None and report.oidc is not None:
            # The token file first: the env file points at it.
            files.append((federated, render_federated_token_file(report.oidc.token)))
        values = resolve_variables(output.preset, output.variables, fields)
        unset: list[str] = []
        if output.dialect in UNSETTING_DIALECTS:  # a preset owns its consumer's choice
            unset = competing_variables([output.preset], values)
        text = render_env_file(values, output.dialect, unset=unset)
        files.append((output.path, text.encode("utf-8")))
        return files

    async def _print_pipeline_variables(
        self, plan: ConnectionPlan, outputs: list[Output] | tuple[Output, ...]
    ) -> None:
        for output in outputs:
            if output.kind != "pipeline_variables":
                continue
            fields = self._fields(plan, output)
            try:
                values = resolve_variables(output.preset, output.variables, fields)
                secret_names = output.secret_names(values)
                text = render_pipeline_variables(
                    values, secret_names=secret_names, is_output=output.is_output
                )
            except ValueError as exc:
                raise OutputError(str(exc), path="pipeline variables") from None
            async with self._stdout_lock:
                self._stdout.write(text)
                self._stdout.flush()
            self._record(plan, output, f"pipeline variables ({len(values)})")

    def _record(self, plan: ConnectionPlan, output: Output, label: str) -> None:
        """Note that ``output`` was delivered, under each token item it shows."""
        report = self.reports[plan.name]
        if label not in report.written:
            report.written.append(label)
        keys = []
        if _needs_access_token(output):
            keys.append(self.profile.scope_for(output) or "")
        if _needs_oidc(output, self.profile):
            keys.append("oidc")
        for key in keys or [""]:
            labels = report.delivered.setdefault(key, [])
            if label not in labels:
                labels.append(label)


def _write_files(files: list[tuple[str, bytes | MergedNpmrc]]) -> None:
    for path, data in files:
        if isinstance(data, MergedNpmrc):
            data.write()
        else:
            atomic_write(path, data)


def _item_keys(output: Output, profile: ResolvedProfile) -> list[str]:
    """The engine items an output shows: its scope, and ``"oidc"``."""
    keys = []
    if _needs_access_token(output):
        keys.append(profile.scope_for(output) or "")
    if _needs_oidc(output, profile):
        keys.append("oidc")
    return keys


def _output_label(output: Output) -> str:
    return "pipeline variables" if output.kind == "pipeline_variables" else output.path


def _absolute(path: str) -> str:
    return os.path.abspath(path)  # noqa: PTH100 - a str path is what env files hold


def _cancelled(name: str) -> AzauthError:
    return AuthenticationError(f"connection {name}: stopped before it delivered (fail_fast)")


def summary_rows(report: RunReport, now: float) -> list[tuple[str, str, str, str]]:
    """Rows of the summary table: connection, scope, expires in, outputs written (or error).

    Expiry is counted on the engine's monotonic clock when the report has it (a skewed wall
    clock does not change it), else from ``now`` (epoch seconds).
    """
    rows: list[tuple[str, str, str, str]] = []
    for conn in report.connections:
        for key, state in conn.items.items():
            scope = "(OIDC token)" if key == "oidc" else key
            held = state.held
            if held is None:
                expires = "-"
            elif report.monotonic is not None:
                expires = _format_delta(held.expires - report.monotonic)
            else:
                expires = _format_delta(float(getattr(held.value, "expires_on", now) or now) - now)
            outputs = ", ".join(conn.delivered.get(key, [])) or "-"
            if state.error is not None:
                stale = " (outputs hold the last good token)" if held is not None else ""
                outputs = f"FAILED{stale}: {state.error}"
            rows.append((conn.name, scope, expires, outputs))
        if conn.delivered.get(""):  # outputs that carry no token (docker_config credHelpers)
            rows.append((conn.name, "-", "-", ", ".join(conn.delivered[""])))
        if conn.error is not None and not conn.items:
            rows.append((conn.name, "-", "-", f"FAILED: {conn.error}"))
    return rows


def render_summary(report: RunReport, now: float) -> str:
    """The summary table as text, for stderr."""
    # Each cell is shown as server text (redacted, one line, capped): error cells quote servers.
    rows: list[tuple[str, ...]] = [("CONNECTION", "SCOPE", "EXPIRES IN", "OUTPUTS")]
    rows += [
        tuple(server_text(cell, limit=1000) for cell in row) for row in summary_rows(report, now)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _format_delta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 0:
        return "expired"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
