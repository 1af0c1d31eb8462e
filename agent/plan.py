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
from agent.outputs.fields import TokenFields
from agent.outputs.kinds import kind_of, output_fields

if TYPE_CHECKING:
    from agent.config import Output, ResolvedProfile
    from agent.config.models import DockerConfigOutput

__all__ = ["render_plan"]

_RUN_TIME = {
    "access_token": "<access token>",
    "oidc_token": "<OIDC token>",
    "expires_on": "<expiry, epoch seconds>",
    "expires_at": "<expiry, RFC 3339>",
}


class _PlannedTokens:
    """Run-time values as ``<...>`` placeholders (:class:`agent.outputs.kinds.TokenSource`)."""

    def __init__(self, profile: ResolvedProfile, env: Mapping[str, str]) -> None:
        self.profile = profile
        self._env = env

    def fields(self, output: Output) -> TokenFields:
        """The fields ``output`` would get, tokens and expiry as placeholders."""
        assert output.connection is not None
        connection = self.profile.connections[output.connection]
        try:
            authority = connection.authority_url(self._env)
        except ConfigError:
            authority = connection.authority_url({})
        return output_fields(
            self.profile,
            output,
            authority=authority,
            access_token=_RUN_TIME["access_token"],
            expires_on=0,
            oidc_token=_RUN_TIME["oidc_token"],
        )

    def oidc_token(self, connection: str) -> str | None:  # noqa: ARG002 - the protocol's
        """The placeholder."""
        return _RUN_TIME["oidc_token"]

    def docker_config(self, output: DockerConfigOutput) -> bytes:  # noqa: ARG002
        """Nothing: the plan shows no file content."""
        return b""


def _variables(output: Output, tokens: _PlannedTokens) -> list[str]:
    """The variables ``output`` would set (none for kinds that set none), secrets as ``***``."""
    try:
        values = kind_of(output).variables(output, tokens)
    except ValueError as exc:
        return [f"      (cannot be rendered: {exc})"]
    if values is None:
        return []
    lines = []
    unset = output.unset_variables(values)
    if unset:
        lines.append(f"    unset {' '.join(unset)}")
    secret = output.secret_names(values)
    for name, value in values.items():
        field = output.mapped_variables.get(name)
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
    tokens = _PlannedTokens(profile, env)
    lines = [f"profile {profile.name}: nothing is contacted or written (--dry-run)"]
    for name, connection in profile.connections.items():
        outputs = [output for output in profile.outputs if output.connection == name]
        scopes = sorted({scope for output in outputs if (scope := profile.scope_for(output))}) or [
            connection.default_scope
        ]
        lines.append(
            f"connection {name}: tenant {connection.tenant_id}, client id {connection.client_id}, "
            f"service connection {connection.service_connection_id}, system token from "
            f"${connection.system_access_token_env}"
        )
        lines.extend(f"  acquire {scope}" for scope in scopes)
        notes = dict.fromkeys(note for output in outputs for note in output.plan_connection_notes())
        lines.extend(f"  {note}" for note in notes)
    for index, output in enumerate(profile.outputs):
        head = f"output {index} ({output.kind}, connection {output.connection})"
        assert output.connection is not None
        files = list(output.written_files(output.connection, ("outputs", index)))
        if output.on_stdout:
            lines.append(f"{head}: ##vso[task.setvariable] lines on stdout")
        for key, path, identity in files:
            where = os.path.abspath(path)  # noqa: PTH100
            if key == "path":
                lines.append(f"{head}: write {where} (0600)")
            else:
                held = ", the OIDC token" if identity[0] == "federated" else ""
                lines.append(f"    write {where} (0600{held})")
        lines.extend(_variables(output, tokens))
    return "\n".join(lines) + "\n"
