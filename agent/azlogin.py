"""``azauth exec --az-login``: the Azure CLI signed in through azauth's token server.

``az login --federated-token`` (the AzureCLI@2 task's own flow) stores one OIDC token and
re-posts it until Entra refuses it (AADSTS700024, about 10 minutes in). ``az login --identity``
against ``azauth serve`` does not go stale: az asks the managed-identity endpoint again for every
token. :func:`az_session` sets that up for the life of one command:

1. a private ``AZURE_CONFIG_DIR`` (``0700``, inside the ``azauth exec`` directory) whose
   ``config`` turns off telemetry (``core.collect_telemetry``), the survey prompt and
   auto-upgrade;
2. ``az cloud set --name AzureCloud|AzureUSGovernment|AzureChinaCloud`` — run with a proxy that
   refuses every connection, so the version check az makes on a fresh directory (it has no
   setting) fails at once, offline, and is cached for the other commands;
3. ``az login --identity --client-id <client_id> --allow-no-subscriptions`` for each connection;
4. ``az account set --subscription <subscription_id>`` of the command's connection.

The directory is removed when the command ends, so no az account outlives the server it relies
on (an account signed in with ``--identity`` stores no endpoint: in a later step az would fall
back to ``169.254.169.254``, the VM's own identity on a self-hosted Azure agent).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from agent import envvars
from agent.exceptions import AuthenticationError, UsageError
from agent.logs import get_logger, redact_text

if TYPE_CHECKING:
    from agent.config import ResolvedProfile

__all__ = ["AZ_CLOUD_NAMES", "AZ_CONFIG", "az_session", "find_az", "login_commands"]

_log = get_logger("agent.azlogin")

AZ_CLOUD_NAMES: dict[str, str] = {
    "public": "AzureCloud",
    "usgovernment": "AzureUSGovernment",
    "china": "AzureChinaCloud",
}
"""azauth's cloud names → the Azure CLI's (``az cloud list``)."""

AZ_CONFIG = """\
[core]
collect_telemetry = false
survey_message = false
no_color = true
only_show_errors = true

[auto-upgrade]
enable = no
"""
"""The ``config`` file of the private directory (knack INI; names from azure-cli's source)."""

_OFFLINE_PROXY = "http://127.0.0.1:9"  # the discard port: connections are refused at once
_COMMAND_TIMEOUT = 120.0
_STDERR_LINES = 5


def find_az(env: Mapping[str, str]) -> str:
    """Return the path of ``az`` on ``env``'s ``PATH``.

    Raises:
        UsageError: az is not installed there.
    """
    found = shutil.which("az", path=env.get(envvars.PATH, os.defpath))
    if found is None:
        raise UsageError(
            "the Azure CLI (az) is not on PATH; install it (for example `pip install azure-cli`)"
        )
    return found


def login_commands(profile: ResolvedProfile, default: str | None) -> list[list[str]]:
    """The az commands that sign in every connection of ``profile``, in order (pure).

    ``default`` is the connection whose ``subscription_id`` is selected at the end (when it has
    one); the others are signed in first, so az's own default is that one even without it.

    Raises:
        UsageError: the connections are in different clouds (az has one active cloud).
    """
    clouds = {connection.cloud for connection in profile.connections.values()}
    if len(clouds) > 1:
        raise UsageError(
            f"the connections of profile {profile.name!r} are in different clouds "
            f"({', '.join(sorted(clouds))}); the Azure CLI has one active cloud: use a profile "
            "whose connections share one"
        )
    commands = [["cloud", "set", "--name", AZ_CLOUD_NAMES[clouds.pop()]]]
    names = sorted(profile.connections, key=lambda name: name == default)
    for name in names:
        connection = profile.connections[name]
        commands.append(
            [
                "login",
                "--identity",
                "--client-id",
                connection.client_id,
                "--allow-no-subscriptions",
                "--output",
                "none",
            ]
        )
    chosen = profile.connections.get(default or "") or profile.connections[names[-1]]
    if chosen.subscription_id:
        commands.append(["account", "set", "--subscription", chosen.subscription_id])
    return commands


async def _run_az(az: str, arguments: Sequence[str], env: Mapping[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(
        az,
        *arguments,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), _COMMAND_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AuthenticationError(
            f"`az {' '.join(arguments[:2])}` did not finish in {_COMMAND_TIMEOUT:.0f} s"
        ) from None
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-_STDERR_LINES:]
        detail = redact_text(" | ".join(tail)) or "no message"
        raise AuthenticationError(
            f"`az {' '.join(arguments[:3])}` failed (exit {process.returncode}): {detail}"
        )
    _log.debug("az_command_done", command=" ".join(arguments[:2]))


@asynccontextmanager
async def az_session(
    profile: ResolvedProfile,
    *,
    server_env: Mapping[str, str],
    env: Mapping[str, str],
    directory: Path,
    default: str | None,
) -> AsyncIterator[dict[str, str]]:
    """Sign az in to every connection through the server; yield ``AZURE_CONFIG_DIR``.

    Args:
        profile: the connections to sign in.
        server_env: the token server's variables (``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``...).
        env: the base environment of the az commands (without the System.AccessToken).
        directory: a private directory; ``<directory>/azure`` becomes ``AZURE_CONFIG_DIR`` and is
            removed on exit.
        default: the connection whose subscription is selected.

    Raises:
        UsageError: az is not on PATH, or the connections span clouds.
        AuthenticationError: an az command failed (its last stderr lines are in the message).
    """
    az = find_az(env)
    commands = login_commands(profile, default)
    config_dir = directory / "azure"
    config_dir.mkdir(mode=0o700)
    try:
        (config_dir / "config").write_text(AZ_CONFIG, encoding="utf-8")
        az_env = {**env, **server_env, envvars.AZURE_CONFIG_DIR: str(config_dir)}
        offline = dict(az_env)
        for name in (
            envvars.HTTPS_PROXY,
            "https_proxy",
            envvars.HTTP_PROXY,
            "http_proxy",
            envvars.ALL_PROXY,
        ):
            offline[name] = _OFFLINE_PROXY
        for name in (envvars.NO_PROXY, "no_proxy", "all_proxy"):
            offline.pop(name, None)
        await _run_az(az, commands[0], offline)
        for command in commands[1:]:
            await _run_az(az, command, az_env)
        _log.info("az_signed_in", connections=list(profile.connections), config_dir=str(config_dir))
        yield {envvars.AZURE_CONFIG_DIR: str(config_dir)}
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)
