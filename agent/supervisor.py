"""``azauth exec``: run one command with a profile's credentials, kept fresh while it runs.

The supervisor, in the spirit of Vault Agent's exec mode and ``aws-vault exec``:

1. creates a private temporary directory (``0700``; under ``$AGENT_TEMPDIRECTORY`` when that
   exists, so the Azure Pipelines agent deletes it even after a ``SIGKILL``);
2. delivers the profile once, like ``azauth run``: its own outputs (unless disabled) plus the
   Azure DevOps OIDC token of one connection, written to ``<dir>/<connection>.federated-token``.
   Any failure ends here: the command is not started and the run's exit code is returned;
3. starts the command with the preset variables (:data:`DEFAULT_PRESETS` unless chosen) pointing
   at that file, stdin/stdout/stderr inherited, and :data:`NESTING_VARIABLE` set;
4. keeps every file fresh while the command runs (:meth:`agent.runner.Runner.watch`); a refresh
   failure is logged and retried, never fatal to the command;
5. relays SIGINT, SIGTERM and SIGHUP to the command (SIGINT only when the terminal did not
   already deliver it, see :func:`terminal_delivers_sigint`) and returns its exit status,
   ``128 + N`` when it died of signal N, 127/126 when it could not be started;
6. removes the temporary directory on every way out (and the profile's outputs too when
   ``remove_on_exit`` is set).

Extension seam: *env providers*. An :data:`EnvProvider` is a callable taking the
:class:`ExecContext` and returning an async context manager that yields extra variables for the
command. It is entered after the first delivery and before the command starts, and exited after
the command has exited and before the files are removed. Its variables win over everything else
(a loopback managed-identity server would yield ``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``).
A provider that yields ``AZAUTH_OIDC_REQUEST_URL`` and ``AZAUTH_OIDC_REQUEST_TOKEN`` is a token
server: the presets then describe the server's flows instead of the token file (see
:mod:`agent.outputs.presets`), and every one of :data:`CONFLICTING_VARIABLES` is removed from the
command's environment, as with ``--clear-env`` (SDKs take the *first* method whose variables
are present, so an ambient client secret, OIDC token or file would silently win).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from agent import envvars
from agent._hardening import stashed_value
from agent.clock import Clock
from agent.config import FederatedTokenFileOutput
from agent.exceptions import ExitCode, UsageError
from agent.logs import get_logger
from agent.outputs.fields import TokenFields
from agent.outputs.presets import PRESETS, RequestFlow, competing_variables, preset_variables
from agent.pool import choose_connection
from agent.report import RunReport
from agent.runner import Runner

if TYPE_CHECKING:
    from agent.config import Output, ResolvedProfile

__all__ = [
    "CONFLICTING_VARIABLES",
    "DEFAULT_PRESETS",
    "EXIT_CANNOT_EXECUTE",
    "EXIT_NOT_FOUND",
    "NESTING_VARIABLE",
    "SYSTEM_TOKEN_VARIABLE",
    "EnvProvider",
    "ExecContext",
    "ExecEnd",
    "ExecOutcome",
    "ExecRequest",
    "SignalRelay",
    "build_child_env",
    "check_not_nested",
    "choose_connection",
    "exec_profile",
    "exit_status",
    "federated_token_path",
    "make_private_directory",
    "nested_profile",
    "preset_environment",
    "supervise",
    "terminal_delivers_sigint",
]

_log = get_logger("agent.supervisor")

NESTING_VARIABLE = envvars.AZAUTH_EXEC_PROFILE
"""Set to the profile's name in the command's environment; ``azauth exec`` refuses to start
when it is already set (unless ``allow_nested``)."""

DEFAULT_PRESETS: tuple[str, ...] = ("azure-identity",)
"""The preset used when none is chosen: ``AZURE_*`` variables, which no ``ARM_*`` consumer reads,
so adding ``--preset terraform`` never conflicts with it."""

SYSTEM_TOKEN_VARIABLE = envvars.SYSTEM_ACCESSTOKEN
"""Removed from the command's environment (with each connection's ``system_access_token_env``)
unless ``keep_system_token``: the command gets its credentials from files."""

CONFLICTING_VARIABLES: tuple[str, ...] = (
    # read by azure-identity: EnvironmentCredential, WorkloadIdentityCredential and the chains
    *envvars.AZURE_IDENTITY_SECRET_VARIABLES,
    envvars.AZURE_FEDERATED_TOKEN_FILE,
    # Terraform azurerm/azuread and the azurerm backend; Pulumi azure-native
    envvars.ARM_CLIENT_SECRET,
    envvars.ARM_CLIENT_SECRET_FILE_PATH,
    envvars.ARM_CLIENT_CERTIFICATE,
    envvars.ARM_CLIENT_CERTIFICATE_PATH,
    envvars.ARM_CLIENT_CERTIFICATE_PASSWORD,
    envvars.ARM_USE_MSI,
    envvars.ARM_MSI_ENDPOINT,
    envvars.ARM_USE_AKS_WORKLOAD_IDENTITY,
    envvars.ARM_OIDC_TOKEN,
    envvars.ARM_OIDC_TOKEN_FILE_PATH,
    envvars.ARM_OIDC_REQUEST_TOKEN,
    envvars.ARM_OIDC_REQUEST_URL,
    envvars.ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID,
    envvars.ARM_OIDC_AZURE_SERVICE_CONNECTION_ID,
    envvars.ARM_ACCESS_KEY,
    envvars.ARM_SAS_TOKEN,
    # managed identity endpoints (App Service, Azure Arc, Cloud Shell, legacy MSI, IMDS override)
    envvars.IDENTITY_ENDPOINT,
    envvars.IDENTITY_HEADER,
    envvars.IDENTITY_SERVER_THUMBPRINT,
    envvars.IMDS_ENDPOINT,
    envvars.MSI_ENDPOINT,
    envvars.MSI_SECRET,
    # GitHub Actions' OIDC request variables, which Terraform and Pulumi fall back to
    envvars.ACTIONS_ID_TOKEN_REQUEST_TOKEN,
    envvars.ACTIONS_ID_TOKEN_REQUEST_URL,
)
"""Ambient variables that would make the command's SDK pick another identity or flow than the
preset's; ``--clear-env`` removes them before the preset variables are set."""


REQUEST_URL_VARIABLE = envvars.AZAUTH_OIDC_REQUEST_URL
REQUEST_TOKEN_VARIABLE = envvars.AZAUTH_OIDC_REQUEST_TOKEN
"""An env provider yielding both serves the OIDC request endpoint (``azauth serve``)."""

EXIT_NOT_FOUND = 127
"""The command does not exist (as in a shell)."""
EXIT_CANNOT_EXECUTE = 126
"""The command exists but cannot be executed (permissions, not a program)."""

_RELAYED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
_STOP_GRACE_SECONDS = 10.0
_TEMP_PREFIX = "azauth-exec-"
_AGENT_TEMP = envvars.AGENT_TEMPDIRECTORY
_PROFILE_ENV = envvars.AZAUTH_PROFILE
_CONFIG_ENV = envvars.AZAUTH_CONFIG


# --------------------------------------------------------------------------------------------
# Pure parts: what the command gets


def nested_profile(environ: Mapping[str, str]) -> str | None:
    """The profile of the ``azauth exec`` that ``environ`` is inside of, or ``None``."""
    return environ.get(NESTING_VARIABLE) or None


def check_not_nested(environ: Mapping[str, str], *, allow_nested: bool = False) -> None:
    """Refuse to run inside another ``azauth exec`` (its files would shadow the outer ones).

    Raises:
        UsageError: :data:`NESTING_VARIABLE` is set and ``allow_nested`` is false.
    """
    outer = nested_profile(environ)
    if outer and not allow_nested:
        raise UsageError(
            f"already inside `azauth exec` (profile {outer!r}, {NESTING_VARIABLE} is set); "
            "run the command directly, or allow nesting (allow_nested=True)"
        )


def federated_token_path(directory: str | os.PathLike[str], connection: str) -> str:
    """The federated token file of ``connection`` inside the private ``directory``."""
    # Connection names are [A-Za-z0-9_.-]+: never a path separator.
    return str(Path(directory) / f"{connection}.federated-token")


def exec_profile(
    profile: ResolvedProfile,
    *,
    connection: str | None,
    token_file: str | None,
    outputs: bool = True,
) -> ResolvedProfile:
    """Return ``profile`` as the supervisor delivers it.

    Its outputs except pipeline variables (or none when ``outputs`` is false), plus a federated
    token file output at ``token_file`` for ``connection``. Connections no remaining output uses
    are dropped, so they cost no token request; when nothing would be left, every connection is
    kept (each then proves its identity with its default scope, as in ``azauth run``).
    """
    # Pipeline variables belong to `azauth run`: their ##vso lines would land on the command's
    # stdout (`azauth exec -- cmd > out.json`), so exec never delivers them.
    kept: list[Output] = [o for o in profile.outputs if not o.on_stdout] if outputs else []
    if connection is not None and token_file is not None:
        kept.append(
            FederatedTokenFileOutput(
                kind="federated_token_file", connection=connection, path=token_file
            )
        )
    used = {output.connection for output in kept}
    connections = {name: c for name, c in profile.connections.items() if name in used}
    return dataclasses.replace(
        profile, outputs=kept, connections=connections or profile.connections
    )


def preset_environment(
    profile: ResolvedProfile,
    connection: str,
    presets: Sequence[str],
    token_file: str,
    env: Mapping[str, str],
    *,
    request_flow: RequestFlow | None = None,
) -> dict[str, str]:
    """Return the variables of ``presets`` for ``connection``, pointing at ``token_file``.

    With ``request_flow`` the ``terraform`` and ``pulumi`` presets point at the OIDC request
    endpoint instead (see :mod:`agent.outputs.presets`).

    Raises:
        UsageError: a preset is unknown.
        ConfigError: ``AZURE_AUTHORITY_HOST`` in ``env`` is not an acceptable URL.
    """
    settings = profile.connections[connection]
    fields = TokenFields.build(
        tenant_id=settings.tenant_id,
        client_id=settings.client_id,
        subscription_id=settings.subscription_id,
        service_connection_id=settings.service_connection_id,
        authority=settings.authority_url(env),
        cloud=settings.cloud,
        federated_token_file=token_file,
    )
    variables: dict[str, str] = {}
    for preset in presets:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r} (expected one of {', '.join(PRESETS)})")
        variables.update(preset_variables(preset, fields, request_flow=request_flow))
    return variables


def build_child_env(
    base: Mapping[str, str],
    *,
    profile: ResolvedProfile,
    variables: Mapping[str, str],
    clear_env: bool = False,
    keep_system_token: bool = False,
    config_file: str | None = None,
    extra: Mapping[str, str] | None = None,
    presets: Sequence[str] = (),
    remove: tuple[str, ...] = (),
) -> dict[str, str]:
    """Return the command's environment.

    In order: ``base``; minus the system access token variables (unless
    ``keep_system_token``); minus :data:`CONFLICTING_VARIABLES` (with ``clear_env``) and
    ``remove``; minus the variables competing with ``presets``
    (:func:`agent.outputs.presets.competing_variables`, always: an ``ARM_OIDC_TOKEN`` from an
    earlier step makes Terraform refuse); plus the
    preset ``variables``; plus ``AZAUTH_PROFILE``, ``AZAUTH_CONFIG`` (when there is a file) and
    :data:`NESTING_VARIABLE`, so that ``azauth`` commands run by the command use the same
    profile; plus ``extra`` (env providers), which wins over everything.
    """
    env = dict(base)
    if keep_system_token:
        for name in {SYSTEM_TOKEN_VARIABLE}.difference(env):
            value = stashed_value(name)  # taken out of os.environ at start (agent._hardening)
            if value:
                env[name] = value
    else:
        names = {SYSTEM_TOKEN_VARIABLE}
        names.update(c.system_access_token_env for c in profile.connections.values())
        for name in names:
            env.pop(name, None)
    for name in (*CONFLICTING_VARIABLES, *remove) if clear_env else remove:
        env.pop(name, None)
    for name in competing_variables(presets):  # a preset owns its consumer's choice
        env.pop(name, None)
    env.update(variables)
    env[_PROFILE_ENV] = profile.name
    if config_file is not None:
        env[_CONFIG_ENV] = config_file
    else:
        env.pop(_CONFIG_ENV, None)
    env[NESTING_VARIABLE] = profile.name
    env.update(extra or {})
    return env


def exit_status(returncode: int) -> int:
    """Return azauth's exit status for a child's return code (``-N``, killed by N: ``128+N``)."""
    return 128 - returncode if returncode < 0 else returncode


def make_private_directory(env: Mapping[str, str]) -> Path:
    """Create the private temporary directory (``0700``) of one ``azauth exec``.

    It goes under ``$AGENT_TEMPDIRECTORY`` when that is an existing directory (the Azure
    Pipelines agent empties it after the job, whatever happened to azauth), else the system's.
    """
    parent = env.get(_AGENT_TEMP)
    where = parent if parent and Path(parent).is_dir() else None
    return Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=where))


# --------------------------------------------------------------------------------------------
# Signals


def terminal_delivers_sigint() -> bool:
    """Whether a SIGINT we receive has already reached the command from the terminal.

    Ctrl-C is sent by the terminal to its whole foreground process group, which holds both
    azauth and the command (started in azauth's group so that it may read the terminal).
    Forwarding it again would be a second interrupt, which tools such as Terraform treat as
    "exit immediately". When azauth has no controlling terminal, or is not in the foreground,
    the signal came from elsewhere (``kill``, the pipeline agent) and is forwarded.
    """
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


class SignalRelay:
    """Handles SIGINT, SIGTERM and SIGHUP for the supervisor's whole life.

    Before the command starts, the first such signal resolves :attr:`interrupted` with its
    number (the supervisor then gives up and cleans up). Once a command is attached, every
    signal is forwarded to it, each time it arrives. Use as a context manager inside the
    running loop; on event loops without ``add_signal_handler`` (Windows) it does nothing.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._child: asyncio.subprocess.Process | None = None
        self._installed: list[int] = []
        self.interrupted: asyncio.Future[int] | None = None

    def __enter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self.interrupted = self._loop.create_future()
        for name in _RELAYED_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:  # pragma: no cover - SIGHUP on Windows
                continue
            try:
                self._loop.add_signal_handler(signum, self._received, int(signum))
            except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows loops
                continue
            self._installed.append(int(signum))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._loop is not None
        for signum in self._installed:
            self._loop.remove_signal_handler(signum)
        self._installed.clear()
        if self.interrupted is not None and not self.interrupted.done():
            self.interrupted.cancel()

    def attach(self, child: asyncio.subprocess.Process) -> None:
        """Forward every later signal to ``child``."""
        self._child = child

    def _received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        child = self._child
        if child is None:
            _log.info("signal_before_start", signal=name)
            if self.interrupted is not None and not self.interrupted.done():
                self.interrupted.set_result(signum)
            return
        if child.returncode is not None:
            return  # already gone; the supervisor is cleaning up
        if signum == signal.SIGINT and terminal_delivers_sigint():
            _log.debug("signal_not_forwarded", signal=name, reason="sent by the terminal")
            return
        _log.info("signal_forwarded", signal=name, pid=child.pid)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)


# --------------------------------------------------------------------------------------------
# The supervisor


@dataclass(frozen=True)
class ExecContext:
    """What an env provider may use, valid from the first delivery until the command exits.

    Attributes:
        profile: the profile as delivered (see :func:`exec_profile`).
        connection: the connection the preset variables describe, if any.
        env: azauth's own environment (pipeline variables, or the emulator's with ``--emulate``).
        runner: the runner keeping the files fresh; ``runner.reports[name]`` holds the current
            tokens of each connection.
        directory: the private temporary directory, removed after the command exits.
        federated_token_file: the file the preset variables point at, if any.
    """

    profile: ResolvedProfile
    connection: str | None
    env: Mapping[str, str]
    runner: Runner
    directory: Path
    federated_token_file: str | None


EnvProvider = Callable[[ExecContext], AbstractAsyncContextManager[Mapping[str, str]]]
"""Yields extra variables for the command while it runs (see the module docstring)."""


@dataclass(frozen=True)
class ExecRequest:
    """What to run and how (the options of ``azauth exec``).

    Attributes:
        command: the program and its arguments (looked up on the command's ``PATH``).
        connection: the connection the preset variables describe (default: the only one).
        presets: the preset variables to set; empty for none.
        outputs: also deliver the profile's own outputs, to their configured paths.
        clear_env: remove :data:`CONFLICTING_VARIABLES` from the command's environment.
        keep_system_token: leave the system access token variables in its environment.
        config_file: the profile file (absolute), exported as ``AZAUTH_CONFIG``.
        providers: env providers, entered in order (later ones win on equal names).
        quiet: unused (kept for callers; the caller shows the outcome's report or not).
    """

    command: Sequence[str]
    connection: str | None = None
    presets: tuple[str, ...] = DEFAULT_PRESETS
    outputs: bool = True
    clear_env: bool = False
    keep_system_token: bool = False
    config_file: str | None = None
    providers: tuple[EnvProvider, ...] = field(default=())
    quiet: bool = False


ExecEnd = Literal["exited", "not_found", "cannot_execute", "not_delivered", "interrupted"]
"""How a supervised run ended: the command exited (or died of a signal); it could not be
found or executed; the first delivery failed, so it was not started; a signal arrived before
it started."""


@dataclass(frozen=True)
class ExecOutcome:
    """The outcome of :func:`supervise`; the caller tells the user (``azauth exec`` does).

    Attributes:
        status: azauth's exit status: the command's (``128 + N`` when killed by signal N), 127
            (:data:`EXIT_NOT_FOUND`) or 126 (:data:`EXIT_CANNOT_EXECUTE`) when it could not be
            started, the run's exit code (3 to 6) when the first delivery failed, ``128 + N``
            when signal N arrived before the command started.
        end: how it ended (:data:`ExecEnd`).
        detail: ``cannot_execute``: the operating system's reason; ``interrupted``: the
            signal's name (``SIGTERM``); else ``None``.
        report: ``not_delivered``: the failed first delivery.
    """

    status: int
    end: ExecEnd
    detail: str | None = None
    report: RunReport | None = None


async def supervise(
    profile: ResolvedProfile,
    request: ExecRequest,
    *,
    env: Mapping[str, str],
    clock: Clock | None = None,
) -> ExecOutcome:
    """Run ``request.command`` with ``profile``'s credentials; return how it ended.

    Args:
        profile: the selected profile.
        request: the command and options.
        env: azauth's environment: where the pipeline variables are read, and the base of the
            command's environment.
        clock: time source of the runner.

    Raises:
        UsageError: no command, or a connection/preset problem (before anything is acquired).
    """
    if not request.command:
        raise UsageError("no command given (ExecRequest.command is empty)")
    connection = None
    if request.presets or request.connection is not None:
        connection = choose_connection(profile, request.connection)
    with SignalRelay() as relay:
        directory = make_private_directory(env)
        try:
            return await _supervise(
                profile,
                request,
                connection=connection,
                directory=directory,
                relay=relay,
                env=env,
                clock=clock,
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
            _log.debug("exec_directory_removed", path=str(directory))


async def _supervise(
    profile: ResolvedProfile,
    request: ExecRequest,
    *,
    connection: str | None,
    directory: Path,
    relay: SignalRelay,
    env: Mapping[str, str],
    clock: Clock | None,
) -> ExecOutcome:
    token_file = federated_token_path(directory, connection) if connection is not None else None
    delivered = exec_profile(
        profile, connection=connection, token_file=token_file, outputs=request.outputs
    )
    assert relay.interrupted is not None
    async with contextlib.AsyncExitStack() as stack:
        runner = Runner(delivered, env=env, clock=clock)
        stack.push_async_callback(runner.close)
        stop = asyncio.Event()
        watcher = asyncio.create_task(runner.watch(stop), name="exec:watch")
        watcher.add_done_callback(lambda task: _watch_ended(task, stop, runner))
        stack.push_async_callback(_stop_watching, stop, watcher, runner)

        started = asyncio.ensure_future(runner.delivered.wait())
        waiting: set[asyncio.Future[Any]] = {started, watcher, relay.interrupted}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
        if relay.interrupted.done():
            return _interrupted(relay.interrupted.result())
        report = runner.first_report
        if report is None:  # the watcher ended without delivering: a bug, surface it
            watcher.result()
            raise AssertionError("the runner stopped before its first delivery")
        if report.exit_code != ExitCode.OK:
            return ExecOutcome(int(report.exit_code), "not_delivered", report=report)

        context = ExecContext(delivered, connection, env, runner, directory, token_file)
        extra: dict[str, str] = {}
        for provider in request.providers:
            extra.update(await stack.enter_async_context(provider(context)))
        if relay.interrupted.done():
            return _interrupted(relay.interrupted.result())
        variables: dict[str, str] = {}
        flow = _request_flow(extra) if request.presets else None
        if connection is not None and token_file is not None and request.presets:
            variables = preset_environment(
                profile, connection, request.presets, token_file, env, request_flow=flow
            )
        child_env = build_child_env(
            env,
            profile=delivered,
            variables=variables,
            clear_env=request.clear_env,
            keep_system_token=request.keep_system_token,
            config_file=request.config_file,
            extra=extra,
            presets=request.presets if variables else (),
            remove=CONFLICTING_VARIABLES if flow is not None else (),
        )
        return await _run_command(request.command, child_env, relay)
    raise AssertionError("unreachable")  # pragma: no cover - AsyncExitStack never swallows


def _request_flow(extra: Mapping[str, str]) -> RequestFlow | None:
    """The OIDC request endpoint an env provider offers, if any."""
    url, token = extra.get(REQUEST_URL_VARIABLE), extra.get(REQUEST_TOKEN_VARIABLE)
    if url and token:
        return RequestFlow(url, token)
    return None


async def _run_command(
    command: Sequence[str], env: dict[str, str], relay: SignalRelay
) -> ExecOutcome:
    """Start ``command``, relay signals to it, wait for it; stop it if we are cancelled."""
    try:
        child = await asyncio.create_subprocess_exec(command[0], *command[1:], env=env)
    except FileNotFoundError:
        return ExecOutcome(EXIT_NOT_FOUND, "not_found")
    except OSError as exc:
        return ExecOutcome(EXIT_CANNOT_EXECUTE, "cannot_execute", str(exc.strerror or exc))
    relay.attach(child)
    _log.info("command_started", pid=child.pid, command=command[0])
    try:
        returncode = await child.wait()
    finally:
        if child.returncode is None:  # we are being cancelled: do not leave it behind
            await _stop_child(child)
    _log.info("command_exited", pid=child.pid, returncode=returncode)
    return ExecOutcome(exit_status(returncode), "exited")


async def _stop_child(child: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.terminate()
    try:
        await asyncio.wait_for(child.wait(), _STOP_GRACE_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()


async def _stop_watching(
    stop: asyncio.Event, watcher: asyncio.Task[RunReport], runner: Runner
) -> None:
    """Stop keeping files fresh; then honour ``remove_on_exit`` for the profile's outputs."""
    stop.set()
    # Also cancel: the first delivery does not watch ``stop`` and may be waiting on the network.
    # Cancelling never interrupts a file write (a write in progress finishes in its thread).
    watcher.cancel()
    results = await asyncio.gather(watcher, return_exceptions=True)
    failure = results[0]
    if isinstance(failure, BaseException) and not isinstance(failure, asyncio.CancelledError):
        _log.error("watch_failed", error=repr(failure))
    if runner.profile.settings.remove_on_exit:
        removed = runner.remove_outputs()
        _log.info("outputs_removed", count=len(removed))


def _watch_ended(task: asyncio.Task[RunReport], stop: asyncio.Event, runner: Runner) -> None:
    """Say so when the files stop being refreshed while the command still runs."""
    first = runner.first_report
    if stop.is_set() or task.cancelled() or first is None or first.exit_code != ExitCode.OK:
        return  # stopped on purpose, or the command never started
    failure = task.exception()
    if failure is not None:
        _log.error("keep_fresh_stopped", error=repr(failure))
    else:  # fail_fast ended the watch at a refresh failure
        _log.warning("keep_fresh_stopped", reason="fail_fast after a permanent refresh failure")


def _interrupted(signum: int) -> ExecOutcome:
    return ExecOutcome(128 + signum, "interrupted", signal.Signals(signum).name)
