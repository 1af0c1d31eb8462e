"""``azauth run``: acquire every token of a profile concurrently, deliver it, keep it fresh.

The runner decides *when*; the credential decides *how*. For each connection of the profile it
works out what the outputs need (access tokens per scope, the OIDC token itself), acquires those
concurrently under a bounded semaphore (one OIDC request shared per connection), and writes every
output atomically. In watch mode one task per connection sleeps until the earliest item is due,
re-acquires it, and rewrites the outputs that use it; a failure keeps the previous files intact
and is retried with backoff and jitter.

Contracts:
- a failed acquisition or write never empties, truncates or removes an existing output;
- one connection failing does not stop the others (unless ``fail_fast``);
- stdout receives only pipeline logging commands; everything else goes to the log (stderr);
- time comes from the injected clock; sleeping is the only way the runner waits (no polling).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self, TextIO

from agent._secrets import server_text
from agent.clock import Clock, SystemClock
from agent.connections import credential_for
from agent.credential import AzurePipelinesCredential, OidcToken
from agent.exceptions import AuthenticationError, AzauthError, ConfigError, ExitCode, OutputError
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
# Watch mode never waits longer than this between failed attempts.
_MAX_BACKOFF = 60.0
_MIN_BACKOFF = 1.0


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

    @property
    def ok(self) -> bool:
        """True when no error is outstanding and every output was delivered."""
        return self.error is None


@dataclass
class RunReport:
    """The outcome of a run: one report per connection."""

    connections: list[ConnectionReport]

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
        report = self.reports[plan.name]
        try:
            await self._acquire(plan, scopes=plan.scopes, oidc=plan.needs_oidc)
            await self._write_outputs(plan, plan.outputs)
            await self._print_pipeline_variables(plan, plan.outputs)
        except AzauthError as exc:
            report.error = exc
            _log.error("connection_failed", connection=plan.name, error=str(exc))
        except asyncio.CancelledError:
            report.error = report.error or _cancelled(plan.name)
            raise

    # ----------------------------------------------------------------------------------------
    # Watch mode

    async def watch(self, stop: asyncio.Event) -> RunReport:
        """Deliver once, then keep every output fresh until ``stop`` is set.

        After the first delivery, :attr:`first_report` holds its report and :attr:`delivered`
        is set. Returns when ``stop`` is set, or at the first failure with ``fail_fast``.
        """
        report = await self.run_once()
        self.first_report = report
        self.delivered.set()
        if self.profile.settings.fail_fast and report.exit_code != ExitCode.OK:
            return report
        loops = [
            asyncio.create_task(self._keep_fresh(plan, stop), name=f"watch:{plan.name}")
            for plan in self._plans
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*loops, stopper], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in [*loops, stopper]:
                task.cancel()
            await asyncio.gather(*loops, stopper, return_exceptions=True)
        del done
        return RunReport([self.reports[plan.name] for plan in self._plans])

    def _due_times(self, plan: ConnectionPlan) -> dict[str, float]:
        """When each item of ``plan`` should be re-acquired (epoch seconds), by item key.

        Keys are scopes, and ``"oidc"`` for the OIDC token. An access token is renewed
        ``refresh_margin`` seconds before expiry, or at its ``refresh_on``, or halfway through
        its life if that is sooner (short-lived tokens); the OIDC token halfway through its life,
        so a federated token file never holds a token about to expire.
        """
        report = self.reports[plan.name]
        margin = self.profile.settings.refresh_margin
        due: dict[str, float] = {}
        for scope in plan.scopes:
            info = report.tokens.get(scope)
            if info is None:
                due[scope] = self._clock.time()
                continue
            acquired = report.acquired.get(scope, info.expires_on)
            lifetime = max(0.0, info.expires_on - acquired)
            when = info.expires_on - min(margin, lifetime / 2)
            if info.refresh_on is not None:
                when = min(when, info.refresh_on)
            due[scope] = self._registries.due(plan.name, scope, when)
        if plan.needs_oidc:
            oidc = report.oidc
            if oidc is None or oidc.expires_on is None:
                due["oidc"] = self._clock.time()
            else:
                acquired = report.acquired.get("oidc", oidc.expires_on)
                due["oidc"] = oidc.expires_on - max(0.0, oidc.expires_on - acquired) / 2
        return due

    async def _keep_fresh(self, plan: ConnectionPlan, stop: asyncio.Event) -> None:
        failures = 0
        retry_at = 0.0  # after a failure: when to try again (fixed once, not pushed back)
        while not stop.is_set():
            due = self._due_times(plan)
            if not due:
                return  # nothing to keep fresh
            now = self._clock.time()
            next_at = min(due.values())
            if failures:
                next_at = max(next_at, retry_at)
            if next_at > now:
                await self._sleep_until_stop(next_at - now, stop)
                if stop.is_set():
                    return
                continue  # recompute: a reload or another item may have changed the schedule
            now = self._clock.time()
            scopes = tuple(s for s in plan.scopes if due.get(s, now + 1) <= now)
            oidc = "oidc" in due and due["oidc"] <= now
            report = self.reports[plan.name]
            try:
                await self._acquire(plan, scopes=scopes, oidc=oidc, force=True)
                affected = [o for o in plan.outputs if _uses(o, scopes, oidc, self.profile)]
                await self._write_outputs(plan, affected)
                await self._print_pipeline_variables(plan, affected)
            except AzauthError as exc:
                failures += 1
                retry_at = self._clock.time() + self._backoff(failures, plan)
                report.error = exc
                _log.warning(
                    "refresh_failed",
                    connection=plan.name,
                    error=str(exc),
                    attempt=failures,
                )
                if self.profile.settings.fail_fast:
                    return
                continue
            failures = 0
            report.error = None

    def _backoff(self, failures: int, plan: ConnectionPlan) -> float:
        """Exponential backoff with jitter, never past the moment the soonest token expires."""
        delay = min(_MAX_BACKOFF, _MIN_BACKOFF * 2.0 ** (failures - 1))
        delay *= 0.75 + 0.25 * self._rng.random()
        report = self.reports[plan.name]
        expiries = [info.expires_on for info in report.tokens.values()]
        if report.oidc is not None and report.oidc.expires_on is not None:
            expiries.append(report.oidc.expires_on)
        remaining = min(expiries, default=self._clock.time() + delay) - self._clock.time()
        if remaining > 2 * _MIN_BACKOFF:
            delay = min(delay, remaining / 2)
        return max(_MIN_BACKOFF / 2, delay)

    async def _sleep_until_stop(self, seconds: float, stop: asyncio.Event) -> None:
        sleeper = asyncio.create_task(self._clock.sleep(seconds))
        waiter = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([sleeper, waiter], return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
            await asyncio.gather(sleeper, waiter, return_exceptions=True)

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

    async def _acquire(
        self,
        plan: ConnectionPlan,
        *,
        scopes: tuple[str, ...],
        oidc: bool,
        force: bool = False,
    ) -> None:
        """Acquire ``scopes`` (and the OIDC token) of one connection concurrently."""
        credential = self._credential(plan)
        report = self.reports[plan.name]

        async def one_scope(scope: str) -> None:
            async with self._semaphore:
                info = await credential.request_token(scope)
            # Remember when it was acquired, to schedule renewal at a fraction of its life.
            report.acquired[scope] = self._clock.time()
            report.tokens[scope] = info
            _log.info(
                "token_acquired",
                connection=plan.name,
                scope=scope,
                expires_in=int(info.expires_on - self._clock.time()),
            )

        async def the_oidc() -> None:
            async with self._semaphore:
                token = await credential.get_oidc_token(force=force)
            report.acquired["oidc"] = self._clock.time()
            report.oidc = token
            _log.info(
                "oidc_token_acquired",
                connection=plan.name,
                subject=token.subject,
                expires_in=None
                if token.expires_on is None
                else int(token.expires_on - self._clock.time()),
            )

        jobs = [one_scope(scope) for scope in scopes]
        if oidc:
            jobs.append(the_oidc())
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                if isinstance(result, AzauthError):
                    raise result
                if isinstance(result, ValueError):
                    raise ConfigError(str(result), key_path=f"connections.{plan.name}") from None
                raise result

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
        jobs: list[tuple[Output, str, list[tuple[str, bytes | MergedNpmrc]]]] = []
        first_error = await self._registries.exchange(
            plan.name,
            plan.connection.tenant_id,
            outputs,
            self.reports[plan.name].tokens,
            self._session,
        )
        for output in outputs:
            if output.kind == "pipeline_variables":
                continue
            try:
                jobs.append((output, output.path, self._render_files(plan, output)))
            except AzauthError as exc:
                first_error = first_error or exc
                _log.error("output_failed", connection=plan.name, path=output.path, error=str(exc))
        results = await asyncio.gather(
            *(asyncio.to_thread(_write_files, files) for _, _, files in jobs),
            return_exceptions=True,
        )
        for (output, label, files), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, AzauthError):
                    raise result
                first_error = first_error or result
                _log.error("output_failed", connection=plan.name, path=label, error=str(result))
                continue
            for path, data in files:
                self._written[path] = None
                if isinstance(data, MergedNpmrc):
                    self._merged[path] = data.owner
            self._record(plan, output, label)
            _log.debug("output_written", connection=plan.name, path=label)
        if first_error is not None:
            raise first_error

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


def _uses(output: Output, scopes: tuple[str, ...], oidc: bool, profile: ResolvedProfile) -> bool:
    """Whether ``output`` shows one of the refreshed items."""
    if oidc and _needs_oidc(output, profile):
        return True
    return _needs_access_token(output) and profile.scope_for(output) in scopes


def _absolute(path: str) -> str:
    return os.path.abspath(path)  # noqa: PTH100 - a str path is what env files hold


def _cancelled(name: str) -> AzauthError:
    return AuthenticationError(f"connection {name}: stopped before it delivered (fail_fast)")


def summary_rows(report: RunReport, now: float) -> list[tuple[str, str, str, str]]:
    """Rows of the summary table: connection, scope, expires in, outputs written (or error)."""
    rows: list[tuple[str, str, str, str]] = []
    for conn in report.connections:
        if conn.error is not None and not conn.tokens and conn.oidc is None:
            rows.append((conn.name, "-", "-", f"FAILED: {conn.error}"))
            continue
        for scope, info in conn.tokens.items():
            outputs = ", ".join(conn.delivered.get(scope, [])) or "-"
            rows.append((conn.name, scope, _format_delta(info.expires_on - now), outputs))
        if conn.oidc is not None and conn.oidc.expires_on is not None:
            outputs = ", ".join(conn.delivered.get("oidc", [])) or "-"
            rows.append(
                (conn.name, "(OIDC token)", _format_delta(conn.oidc.expires_on - now), outputs)
            )
        if conn.delivered.get(""):  # outputs that carry no token (docker_config credHelpers)
            rows.append((conn.name, "-", "-", ", ".join(conn.delivered[""])))
        if conn.error is not None:
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
