"""Where tokens go: pure renderers for every output kind, and one safe file writer.

::

    fields.py              FIELD_NAMES, SECRET_FIELDS, TokenFields: what an output can deliver
    token_file.py          render_token_file (raw | json), render_federated_token_file
    env_file.py            render_env_file in the dotenv, docker, systemd, sh and pwsh dialects
    presets.py             terraform, pulumi and azure-identity variable sets; resolve_variables
    pipeline_variables.py  ##vso[task.setvariable] / ##vso[task.setsecret] logging commands
    docker_config.py       render_docker_config: a Docker config.json for registries, merged
    kinds.py               the output-kind registry: one renderer per kind (the runner's seam)
    _atomic.py             atomic_write / remove_output: 0600 files, 0700 dirs, no symlinks

Renderers raise ``ValueError`` (naming a variable or field, never a value) for what their format
cannot hold; the code that writes the output turns that into an ``OutputError`` with the path.
Names are imported lazily so that ``agent.outputs.fields`` stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent._lazy import lazy_exports

if TYPE_CHECKING:
    from agent.outputs._atomic import atomic_write, remove_output
    from agent.outputs.env_file import DIALECTS, render_env_file
    from agent.outputs.fields import FIELD_NAMES, SECRET_FIELDS, TokenFields
    from agent.outputs.pipeline_variables import (
        render_pipeline_variables,
        render_set_secret,
        render_set_variable,
    )
    from agent.outputs.presets import PRESETS, preset_variables, resolve_variables
    from agent.outputs.token_file import render_federated_token_file, render_token_file

__all__ = [
    "DIALECTS",
    "FIELD_NAMES",
    "PRESETS",
    "SECRET_FIELDS",
    "TokenFields",
    "atomic_write",
    "preset_variables",
    "remove_output",
    "render_env_file",
    "render_federated_token_file",
    "render_pipeline_variables",
    "render_set_secret",
    "render_set_variable",
    "render_token_file",
    "resolve_variables",
]

_LOCATIONS: dict[str, str] = {
    "DIALECTS": "agent.outputs.env_file",
    "FIELD_NAMES": "agent.outputs.fields",
    "PRESETS": "agent.outputs.presets",
    "SECRET_FIELDS": "agent.outputs.fields",
    "TokenFields": "agent.outputs.fields",
    "atomic_write": "agent.outputs._atomic",
    "preset_variables": "agent.outputs.presets",
    "remove_output": "agent.outputs._atomic",
    "render_env_file": "agent.outputs.env_file",
    "render_federated_token_file": "agent.outputs.token_file",
    "render_pipeline_variables": "agent.outputs.pipeline_variables",
    "render_set_secret": "agent.outputs.pipeline_variables",
    "render_set_variable": "agent.outputs.pipeline_variables",
    "render_token_file": "agent.outputs.token_file",
    "resolve_variables": "agent.outputs.presets",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LOCATIONS)
