"""``azauth status``: which profile is active, why, and the identity of each of its connections.

Without ``--check`` nothing leaves the machine: the identity shown is what the profile file says
(tenant, client id, service connection, subscription, authority), plus whether the pipeline
variables are present and which access tokens ``azauth token`` has cached. ``--check`` also asks
Azure DevOps for one OIDC token per connection (no Microsoft Entra call) and shows its subject,
issuer, audience and expiry: what an Entra federated credential must match. No token, secret
or cache key is ever printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agent import envvars
from agent._pipelines import pipeline_safe
from agent._secrets import redact_text, server_text
from agent.cli.validate import add_config_argument
from agent.exceptions import ExitCode

if TYPE_CHECKING:
    from agent.config import Connection, LoadedConfig, ResolvedProfile

__all__ = [
    "SELECTION_SOURCES",
    "build_status",
    "cached_tokens",
    "check_connections",
    "register",
    "render_status",
    "run",
    "selection_source",
]

SELECTION_SOURCES = ("--profile", envvars.AZAUTH_PROFILE, "default_profile", "only_profile")
"""Why a profile is active, highest precedence first (``selected_by`` in the JSON)."""

_NESTING_VARIABLE = envvars.AZAUTH_EXEC_PROFILE
_OIDC_URI = envvars.SYSTEM_OIDCREQUESTURI
_SELECTION_TEXT = {
    "--profile": "--profile",
    envvars.AZAUTH_PROFILE: envvars.AZAUTH_PROFILE,
    "default_profile": "default_profile in the file",
    "only_profile": "the only profile",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` command."""
    parser = subparsers.add_parser(
        "status",
        help="show the active profile and the identity of its connections",
        description=(
            "Show the active profile, what selected it (--profile > AZAUTH_PROFILE > "
            "default_profile > the only profile), and for each connection its identity, whether "
            "the pipeline variables are set, and the access tokens azauth token has cached. "
            "No network call unless --check, which fetches one OIDC token per connection from "
            "Azure DevOps (no Microsoft Entra call) to show its subject, issuer and expiry."
        ),
    )
    add_config_argument(parser)
    parser.add_argument("--profile", metavar="NAME", help="the profile (default: the active one)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--check",
        action="store_true",
        help="fetch an OIDC token per connection from Azure DevOps (network; no Entra call)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the status on stdout; with ``--check``, exit non-zero when a fetch failed."""
    from agent.config import load_config  # noqa: PLC0415 - keep --help fast

    environ = dict(os.environ)
    loaded = load_config(args.config)
    profile = loaded.profile(args.profile)
    now = time.time()
    checks: dict[str, dict[str, Any]] | None = None
    if args.check:
        checks = asyncio.run(check_connections(profile, environ))
    document = build_status(
        loaded,
        profile,
        environ,
        selected_by=selection_source(loaded, args.profile, environ),
        checks=checks,
        cached=cached_tokens(profile, environ, now),
    )
    # A report, never a credential: redacted like every line azauth shows (URL user-info too).
    if args.json:
        sys.stdout.write(redact_text(json.dumps(document, indent=2)) + "\n")
    else:
        sys.stdout.write(pipeline_safe(redact_text(render_status(document, now))))
    if checks is None:
        return ExitCode.OK
    return _check_exit_code(checks)


def selection_source(loaded: LoadedConfig, flag: str | None, environ: Mapping[str, str]) -> str:
    """Return which of :data:`SELECTION_SOURCES` selects the active profile.

    Mirrors :meth:`agent.config.LoadedConfig.select_profile_name`, which does the selecting.
    """
    from agent.config import PROFILE_ENV  # noqa: PLC0415

    if flag:
        return "--profile"
    if environ.get(PROFILE_ENV):
        return envvars.AZAUTH_PROFILE
    if loaded.config.default_profile is not None:
        return "default_profile"
    return "only_profile"


def build_status(
    loaded: LoadedConfig,
    profile: ResolvedProfile,
    environ: Mapping[str, str],
    *,
    selected_by: str,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
    cached: Mapping[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Return the status document (the ``--json`` output); it holds no secret.

    Args:
        loaded: the loaded configuration.
        profile: the active profile.
        environ: the environment (only presence of the pipeline variables is read from it).
        selected_by: one of :data:`SELECTION_SOURCES`.
        checks: per connection, what :func:`check_connections` found; ``None`` when not run.
        cached: per connection, the entries :func:`cached_tokens` found; ``None`` when the
            cache could not be read.
    """
    connections = {
        name: _connection_status(name, connection, environ, checks, cached)
        for name, connection in profile.connections.items()
    }
    return {
        "profile": profile.name,
        "description": profile.description,
        "selected_by": selected_by,
        "config": str(loaded.source.resolve()) if loaded.source is not None else None,
        "inside_exec": environ.get(_NESTING_VARIABLE) or None,
        "oidc_request_uri_set": bool(environ.get(_OIDC_URI)),
        "checked": checks is not None,
        "connections": connections,
    }


def _connection_status(
    name: str,
    connection: Connection,
    environ: Mapping[str, str],
    checks: Mapping[str, Mapping[str, Any]] | None,
    cached: Mapping[str, list[dict[str, Any]]] | None,
) -> dict[str, Any]:
    from agent.exceptions import ConfigError  # noqa: PLC0415

    problems: list[str] = []
    try:
        authority: str | None = connection.authority_url(environ)
    except ConfigError as exc:
        authority = None
        problems.append(str(exc))
    token_variable = connection.system_access_token_env
    token_set = bool(environ.get(token_variable))
    if not token_set and environ.get(_NESTING_VARIABLE):
        problems.append(
            f"{token_variable} is not set: azauth exec removes it from the command's "
            "environment unless given --keep-system-token"
        )
    elif not token_set:
        problems.append(
            f"{token_variable} is not set: map it into the step "
            f"(env: {token_variable}: $(System.AccessToken))"
        )
    if not environ.get(_OIDC_URI):
        problems.append(f"{_OIDC_URI} is not set: not inside an Azure Pipelines job")
    # Set but unusable (a control character inside, only whitespace): the message run would give.
    from agent.envvalues import oidc_request_uri  # noqa: PLC0415

    checks_to_run: list[tuple[Callable[[], str], bool]] = [
        (lambda: connection.system_access_token(environ), token_set),
        (lambda: oidc_request_uri(environ), bool(environ.get(_OIDC_URI))),
    ]
    for check, is_set in checks_to_run:
        if is_set:
            try:
                check()
            except ConfigError as exc:
                problems.append(str(exc))
    return {
        "tenant_id": connection.tenant_id,
        "client_id": connection.client_id,
        "service_connection_id": connection.service_connection_id,
        "subscription_id": connection.subscription_id,
        "cloud": connection.cloud,
        "authority": authority,
        "default_scope": connection.default_scope,
        "additionally_allowed_tenants": list(connection.additionally_allowed_tenants),
        "system_access_token_env": token_variable,
        "system_access_token_set": token_set,
        "federated_token": dict(checks[name]) if checks is not None and name in checks else None,
        "cached_tokens": list(cached.get(name, [])) if cached is not None else None,
        "problems": problems,
    }


async def check_connections(
    profile: ResolvedProfile, environ: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Fetch one Azure DevOps OIDC token per connection, concurrently; never raises.

    Returns, per connection, the token's ``subject``, ``issuer``, ``audience``, ``expires_on``
    and ``expires_at``, or ``error`` (a message holding no secret) and ``exit_code``.
    """
    from agent.exceptions import AzauthError  # noqa: PLC0415
    from agent.outputs.fields import format_rfc3339  # noqa: PLC0415
    from agent.pool import CredentialPool  # noqa: PLC0415 - imports aiohttp

    def _claim(value: Any) -> Any:
        return server_text(value) if isinstance(value, str) else value

    async def one(pool: CredentialPool, name: str) -> dict[str, Any]:
        try:
            token = await pool.credential(name).get_oidc_token()
        except AzauthError as exc:
            return {"error": redact_text(str(exc)), "exit_code": int(exc.exit_code)}
        expires = token.expires_on
        return {
            "subject": _claim(token.subject),
            "issuer": _claim(token.issuer),
            "audience": _claim(token.audience),
            "expires_on": expires,
            "expires_at": format_rfc3339(expires) if expires is not None else None,
        }

    names = list(profile.connections)
    async with CredentialPool.for_profile(profile, env=environ) as pool:
        results = await asyncio.gather(*(one(pool, name) for name in names))
    return dict(zip(names, results, strict=True))


def _check_exit_code(checks: Mapping[str, Mapping[str, Any]]) -> int:
    from agent.report import combined_exit_code  # noqa: PLC0415

    failed = [int(check["exit_code"]) for check in checks.values() if "error" in check]
    return combined_exit_code(failed, len(checks))


def cached_tokens(
    profile: ResolvedProfile, environ: Mapping[str, str], now: float
) -> dict[str, list[dict[str, Any]]] | None:
    """Return, per connection, the access tokens ``azauth token`` has cached for it.

    An entry belongs to a connection when it records this profile's name, the connection's name
    and its client id. Entries record no profile *file*, so a same-named profile of another file
    with the same connection would show too. Returns ``None`` when the cache cannot be read.
    Token values are never read into the result.
    """
    from agent.credential_helpers import cache as tokencache  # noqa: PLC0415 - stdlib only

    entries = tokencache.TokenCache(tokencache.cache_dir(environ)).entries()
    if entries is None:
        return None
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in profile.connections}
    for _key, entry in entries:
        details = entry.details
        connection = profile.connections.get(details.connection)
        if (
            details.profile != profile.name
            or connection is None
            or connection.client_id != details.client_id
        ):
            continue
        found[details.connection].append(
            {
                "scopes": list(details.scopes),
                "tenant": details.tenant,
                "expires_on": details.expires_on,
                "expires_at": _rfc3339(details.expires_on),
                "fresh": tokencache.is_fresh(entry, now),
            }
        )
    for listed in found.values():
        listed.sort(key=lambda item: (item["scopes"], item["tenant"], item["expires_on"]))
    return found


def _rfc3339(epoch: int) -> str:
    from agent.outputs.fields import format_rfc3339  # noqa: PLC0415

    return format_rfc3339(epoch)


def render_status(document: Mapping[str, Any], now: float) -> str:
    """Return the human-readable status for ``document`` (see :func:`build_status`)."""
    lines = [f"profile    {document['profile']}  (selected by "]
    lines[0] += f"{_SELECTION_TEXT.get(document['selected_by'], document['selected_by'])})"
    if document.get("description"):
        lines.append(f"           {document['description']}")
    config = document["config"]
    lines.append(f"file       {config or '(none: AZURESUBSCRIPTION_* variables)'}")
    if document["inside_exec"]:
        lines.append(f"exec       inside `azauth exec` of profile {document['inside_exec']}")
    for name, connection in document["connections"].items():
        lines.extend(["", f"connection {name}"])
        lines.extend(_render_connection(connection, document["checked"], now))
    return "\n".join(lines) + "\n"


def _render_connection(connection: Mapping[str, Any], checked: bool, now: float) -> list[str]:
    rows = [
        ("tenant", connection["tenant_id"]),
        ("client id", connection["client_id"]),
        ("service connection", connection["service_connection_id"]),
        ("subscription", connection["subscription_id"] or "(not set)"),
        ("cloud", connection["cloud"]),
        ("authority", connection["authority"] or "(invalid)"),
        ("default scope", connection["default_scope"]),
    ]
    if connection["additionally_allowed_tenants"]:
        rows.append(("other tenants", ", ".join(connection["additionally_allowed_tenants"])))
    state = "set" if connection["system_access_token_set"] else "NOT SET"
    rows.append(("system token", f"{connection['system_access_token_env']} ({state})"))
    rows.append(("oidc token", _render_oidc(connection["federated_token"], checked, now)))
    cached = connection["cached_tokens"]
    if cached is None:
        rows.append(("cached tokens", "(cache unreadable)"))
    elif not cached:
        rows.append(("cached tokens", "none"))
    else:
        for index, entry in enumerate(cached):
            label = "cached tokens" if index == 0 else ""
            freshness = "" if entry["fresh"] else ", due for renewal"
            if entry["expires_on"] <= now:
                freshness = ", expired"
            scopes = " ".join(entry["scopes"])
            expiry = _expiry(entry["expires_on"], now)
            rows.append((label, f"{scopes} (tenant {entry['tenant']}): {expiry}{freshness}"))
    lines = [f"  {label:<20}{value}" for label, value in rows]
    lines.extend(f"  problem: {problem}" for problem in connection["problems"])
    return lines


def _render_oidc(check: Mapping[str, Any] | None, checked: bool, now: float) -> str:
    if not checked or check is None:
        return "not fetched (--check fetches one from Azure DevOps; no Entra call)"
    if "error" in check:
        return f"FAILED: {check['error']}"
    expiry = _expiry(check["expires_on"], now) if check["expires_on"] is not None else "unknown"
    return (
        f"subject {check['subject']}, issuer {check['issuer']}, audience {check['audience']}, "
        f"{expiry}"
    )


def _expiry(expires_on: int, now: float) -> str:
    from agent.report import format_delta  # noqa: PLC0415

    left = int(expires_on - now)
    when = _rfc3339(expires_on)
    if left < 0:
        return f"expired at {when}"
    return f"expires in {format_delta(left, short=False)} ({when})"
