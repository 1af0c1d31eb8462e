"""``azauth run --dry-run``: what a run would do, computed from the profile alone.

Nothing is contacted and nothing is written: no environment variable is required either (the
system access token is only named). Values that only a run knows — access tokens, OIDC tokens,
expiry times — are shown as ``<...>``; secret ones are never shown at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from agent.exceptions import ConfigError
from agent.outputs.env_file import UNSETTING_DIALECTS
from agent.outputs.fields import SECRET_FIELDS, TokenFields
from agent.outputs.presets import competing_variables, resolve_variables

if TYPE_CHECKING:
    from agent.config import Output, ResolvedProfile

__all__ = ["render_plan"]

_RUN_TIME = {
    "access_token": "<access token>",
    "oidc_token": "<OIDC token>",
    "expires_on": "<expiry, epoch seconds>",
    "expires_at": "<expiry, RFC 3339>",
}


def _fields(profile: ResolvedProfile, output: Output, env: Mapping[str, str]) -> TokenFields:
    assert output.connection is not None
    connection = profile.connections[output.connection]
    federated = None
    if output.kind == "env_file":
        federated = output.effective_federated_token_path
    elif output.kind == "pipeline_variables":
        federated = profile.federated_token_file_for(output.connection)
    if federated is not None:
        federated = os.path.abspath(federated)  # noqa: PTH100 - as the runner writes it
    try:
        authority = connection.authority_url(env)
    except ConfigError:
        authority = connection.authority_url({})
    return TokenFields.build(
        access_token=_RUN_TIME["access_token"],
        expires_on=0,
        scope=profile.scope_for(output),
        tenant_id=connection.tenant_id,
        client_id=connection.client_id,
        subscription_id=connection.subscription_id,
        service_connection_id=connection.service_connection_id,
        authority=authority,
        cloud=connection.cloud,
        oidc_token=_RUN_TIME["oidc_token"],
        federated_token_file=federated,
    )


def _variables(profile: ResolvedProfile, output: Output, env: Mapping[str, str]) -> list[str]:
    assert output.kind in ("env_file", "pipeline_variables")
    try:
        values = resolve_variables(output.preset, output.variables, _fields(profile, output, env))
    except ValueError as exc:
        return [f"      (cannot be rendered: {exc})"]
    lines = []
    if output.kind == "env_file" and output.dialect in UNSETTING_DIALECTS and output.preset:
        lines.append(f"    unset {' '.join(competing_variables([output.preset], values))}")
    secret = (
        output.secret_names(values)
        if output.kind == "pipeline_variables"
        else {n for n, f in output.variables.items() if f in SECRET_FIELDS}
    )
    for name, value in values.items():
        field = output.variables.get(name)
        shown = _RUN_TIME.get(field or "", value)
        if field in ("expires_on", "expires_at"):
            shown = _RUN_TIME[field]
        flag = " (secret)" if name in secret else ""
        lines.append(f"      {name}={'***' if name in secret else shown}{flag}")
    return lines


def render_plan(profile: ResolvedProfile, env: Mapping[str, str]) -> str:
    """Return the plan of ``azauth run`` for ``profile`` as text (one item per line).

    Lists each connection with its identity and the scopes it would acquire, every file with
    its mode, every variable an env file or pipeline variable output would set (secrets as
    ``***``, run-time values as ``<...>``), and the variables sh/pwsh files would unset.
    """
    lines = [f"profile {profile.name}: nothing is contacted or written (--dry-run)"]
    for name, connection in profile.connections.items():
        scopes = sorted(
            {
                scope
                for output in profile.outputs
                if output.connection == name and (scope := profile.scope_for(output))
            }
        ) or [connection.default_scope]
        oidc = any(
            o.connection == name and o.kind == "federated_token_file" for o in profile.outputs
        )
        lines.append(
            f"connection {name}: tenant {connection.tenant_id}, client id {connection.client_id}, "
            f"service connection {connection.service_connection_id}, system token from "
            f"${connection.system_access_token_env}"
        )
        lines.extend(f"  acquire {scope}" for scope in scopes)
        if oidc:
            lines.append("  keep the OIDC token")
    for index, output in enumerate(profile.outputs):
        head = f"output {index} ({output.kind}, connection {output.connection})"
        if output.kind == "pipeline_variables":
            lines.append(f"{head}: ##vso[task.setvariable] lines on stdout")
            lines.extend(_variables(profile, output, env))
            continue
        lines.append(f"{head}: write {os.path.abspath(output.path)} (0600)")  # noqa: PTH100
        if output.kind == "env_file":
            federated = output.effective_federated_token_path
            if federated is not None:
                lines.append(f"    write {os.path.abspath(federated)} (0600, the OIDC token)")  # noqa: PTH100
            lines.extend(_variables(profile, output, env))
    return "\n".join(lines) + "\n"
