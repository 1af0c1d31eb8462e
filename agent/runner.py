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
import random
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TextIO

from agent.clock import Clock, SystemClock
from agent.exceptions import (
    AuthenticationError,
    AzauthError,
    ConfigError,
    ExitCode,
    OutputError,
)
from agent.logs import get_logger
from agent.outputs._atomic import StaleTempSweeps, atomic_write, remove_output
from agent.outputs.fields import TokenFields
from agent.outputs.kinds import Rendered, kind_of, output_fields
from agent.pool import CredentialPool
from agent.refresh import (
    Acquired,
    Item,
    RefreshEngine,
    RefreshPolicy,
    acquired_access,
    acquired_oidc,
)
from agent.registries.delivery import RegistryDelivery
from agent.report import ConnectionReport, RunReport
from agent.retry import RetryPolicy

if TYPE_CHECKING:
    import aiohttp

    from agent.config import Connection, Output, ResolvedProfile
    from agent.config.models import DockerConfigOutput
    from agent.feeds.writer import MergedNpmrc

__all__ = ["ConnectionReport", "RunReport", "Runner", "plan_connection"]

_log = get_logger("agent.runner")

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


def plan_connection(
    profile: ResolvedProfile, name: str, outputs: tuple[Output, ...] | None = None
) -> ConnectionPlan:
    """Work out what connection ``name`` of ``profile`` must acquire for its outputs.

    A connection without outputs still acquires its default scope, so ``azauth run`` with an
    implicit (environment-only) profile proves the identity works. ``outputs``: the
    connection's outputs when the caller has grouped them already (else found in the profile).
    """
    connection = profile.connections[name]
    if outputs is None:
        outputs = tuple(o for o in profile.outputs if o.connection == name)
    scopes: dict[str, None] = {}
    for output in outputs:
        if output.needs_access_token():
            scope = profile.scope_for(output)
            assert scope is not None
            scopes[scope] = None
    needs_oidc = any(o.needs_oidc(profile) for o in outputs)
    if not outputs:
        scopes[connection.default_scope] = None
    return ConnectionPlan(name, connection, outputs, tuple(scopes), needs_oidc)


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
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        settings = profile.settings
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        # Every credential and the HTTP session come from the profile's pool.
        self._pool = CredentialPool.for_profile(
            profile, env=env, clock=self._clock, session=session
        )
        self._retry = self._pool.retry
        # Outputs grouped by connection in one pass (not one pass over all outputs per connection).
        grouped: dict[str, list[Output]] = {name: [] for name in profile.connections}
        for output in profile.outputs:
            if output.connection in grouped:
                grouped[output.connection].append(output)
        self._plans = [
            plan_connection(profile, name, tuple(grouped[name])) for name in profile.connections
        ]
        # Per connection: token item key -> the outputs showing it, with all the keys they need;
        # a delivery looks up its own key instead of walking every output.
        self._showing: dict[str, dict[str, list[tuple[Output, frozenset[str]]]]] = {}
        for plan in self._plans:
            showing: dict[str, list[tuple[Output, frozenset[str]]]] = {}
            for output in plan.outputs:
                keys = frozenset(_item_keys(output, profile))
                for key in keys:
                    showing.setdefault(key, []).append((output, keys))
            self._showing[plan.name] = showing
        self.reports = {plan.name: ConnectionReport(plan.name) for plan in self._plans}
        for plan in self._plans:
            self.reports[plan.name].expected_outputs = len(plan.outputs)
        self._written: dict[str, None] = {}
        # Leftover temporary files are swept per directory on the runner's clock.
        self._sweeps = StaleTempSweeps(monotonic=self._clock.monotonic)
        # docker_config outputs: their ACR refresh tokens and when those are due again.
        self._registries = RegistryDelivery(profile, env=env, clock=self._clock, retry=self._retry)
        self._tokens = _HeldTokens(profile, env, self.reports, self._registries)
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
        await self._pool.close()

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
                _unmerge_npmrc(path, self._merged[path])
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
            await self._print_outputs(plan, outputs)
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
        for credential in self._pool.credentials.values():
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
                    labels.append(output.target)
            if not plan.outputs and any(s.error is not None for s in states.values()):
                labels.append(plan.name)
        return labels

    # ----------------------------------------------------------------------------------------
    # Acquisition

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
                credential = self._pool.credential(plan.name)
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
                output for output, keys in self._showing[plan.name].get(key, ()) if keys <= held
            ]
            await self._write_outputs(plan, ready)
            await self._print_outputs(plan, ready)

        return deliver

    # ----------------------------------------------------------------------------------------
    # Delivery

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
            self._pool.session,
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
        if output.on_stdout:
            return
        label = output.target
        lock = self._output_locks.setdefault(label, asyncio.Lock())
        async with lock:
            try:
                # Rendered inside the lock: whoever writes last writes the newest tokens.
                files = self._render(output).files
                await asyncio.to_thread(_write_files, files, self._sweeps)
            except AzauthError as exc:
                _log.error("output_failed", connection=plan.name, path=label, error=str(exc))
                raise
        for path, data in files:
            self._written[path] = None
            if not isinstance(data, bytes):  # a MergedNpmrc
                self._merged[path] = data.owner
        self._record(plan, output, label)
        _log.debug("output_written", connection=plan.name, path=label)

    def _render(self, output: Output) -> Rendered:
        """What delivering ``output`` now writes or prints (its kind's renderer decides).

        Raises:
            OutputError: a value the output cannot hold (named, never shown).
        """
        try:
            return kind_of(output).render(output, self._tokens)
        except ValueError as exc:
            raise OutputError(str(exc), path=output.target) from None

    async def _print_outputs(
        self, plan: ConnectionPlan, outputs: list[Output] | tuple[Output, ...]
    ) -> None:
        """Print the outputs that go to stdout (logging commands), one at a time."""
        for output in outputs:
            if not output.on_stdout:
                continue
            rendered = self._render(output)
            async with self._stdout_lock:
                self._stdout.write(rendered.stdout or "")
                self._stdout.flush()
            self._record(plan, output, rendered.label or output.target)

    def _record(self, plan: ConnectionPlan, output: Output, label: str) -> None:
        """Note that ``output`` was delivered, under each token item it shows."""
        report = self.reports[plan.name]
        if label not in report.written:
            report.written.append(label)
        for key in _item_keys(output, self.profile) or [""]:
            labels = report.delivered.setdefault(key, [])
            if label not in labels:
                labels.append(label)


def _write_files(files: list[tuple[str, bytes | MergedNpmrc]], sweeps: StaleTempSweeps) -> None:
    for path, data in files:
        if isinstance(data, bytes):
            atomic_write(path, data, sweeps=sweeps)
        else:  # a MergedNpmrc: azauth's lines merged into the user's npmrc
            data.write()


def _unmerge_npmrc(path: str, owner: str) -> bool:
    """Remove this runner's lines from a merged npmrc (:meth:`MergedNpmrc.remove`)."""
    # Imported here: agent.feeds.writer (and the XML code with it) only for feed outputs.
    from agent.feeds.writer import MergedNpmrc  # noqa: PLC0415

    return MergedNpmrc.remove(path, owner)


def _item_keys(output: Output, profile: ResolvedProfile) -> list[str]:
    """The engine items an output shows: its scope, and ``"oidc"``."""
    keys = []
    if output.needs_access_token():
        keys.append(profile.scope_for(output) or "")
    if output.needs_oidc(profile):
        keys.append("oidc")
    return keys


class _HeldTokens:
    """What a runner holds, as renderers read it (:class:`agent.outputs.kinds.TokenSource`)."""

    def __init__(
        self,
        profile: ResolvedProfile,
        env: Mapping[str, str],
        reports: Mapping[str, ConnectionReport],
        registries: RegistryDelivery,
    ) -> None:
        self.profile = profile
        self._env = env
        self._reports = reports
        self._registries = registries

    def fields(self, output: Output) -> TokenFields:
        """The fields of ``output``: its scope's current token, its connection's identity."""
        assert output.connection is not None
        report = self._reports[output.connection]
        scope = self.profile.scope_for(output)
        info = report.tokens.get(scope) if scope is not None else None
        return output_fields(
            self.profile,
            output,
            authority=self.profile.connections[output.connection].authority_url(self._env),
            access_token=info.token if info is not None else None,
            expires_on=info.expires_on if info is not None else None,
            token_type=getattr(info, "token_type", "Bearer") if info is not None else "Bearer",
            oidc_token=report.oidc.token if report.oidc is not None else None,
        )

    def oidc_token(self, connection: str) -> str | None:
        """The connection's OIDC token, if held."""
        oidc = self._reports[connection].oidc
        return oidc.token if oidc is not None else None

    def docker_config(self, output: DockerConfigOutput) -> bytes:
        """The merged config.json (:meth:`RegistryDelivery.render`)."""
        assert output.connection is not None
        return self._registries.render(output.connection, output)


def _cancelled(name: str) -> AzauthError:
    return AuthenticationError(f"connection {name}: stopped before it delivered (fail_fast)")
