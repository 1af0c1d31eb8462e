"""The profile file: models, loading (TOML/YAML, environment, precedence), schema and cache.

Modules::

    models.py           the pydantic models: fields, validators, the JSON Schema's source
    rules.py            what the models answer (one mixin per model), without pydantic
    loading.py          load_config: TOML/YAML, AZAUTH_* overrides, precedence, selection
    _yaml.py            the strict YAML parser (duplicate keys refused, bounded aliases)
    discovery.py        which profile file, or the AZURESUBSCRIPTION_* variables (stdlib)
    paths.py            ~ and ${VAR} in output paths
    resolution.py       extends, ResolvedProfile and the checks that span a file
    fschecks.py         what the file system says about an output path now (stdlib)
    feeds.py            the checks of a profile's feeds
    registry_checks.py  the checks of docker_config outputs against the registries table
    problems.py         Problem, key paths and suggestions (no pydantic)
    errors.py           ConfigError messages from pydantic's errors and Problems
    schema.py           schemas/azauth.schema.json, generated from the models
    compiled.py         the profile cache of run and validate: no pydantic when nothing changed

Typical use::

    loaded = load_config()                 # or load_config("azauth.toml")
    profile = loaded.profile()             # --profile > AZAUTH_PROFILE > default_profile > only one
    for output in profile.outputs:
        connection = profile.connections[output.connection]
"""

from __future__ import annotations

from agent._lazy import lazy_exports

TYPE_CHECKING = False  # not from typing: see agent/__init__.py
if TYPE_CHECKING:
    from agent.config.loading import PROFILE_ENV, LoadedConfig, load_config
    from agent.config.models import (
        FIELD_NAMES,
        PRESETS,
        SECRET_FIELDS,
        AzauthConfig,
        Connection,
        EnvFileOutput,
        FederatedTokenFileOutput,
        FieldName,
        Output,
        PipelineVariablesOutput,
        Profile,
        Settings,
        TokenFileOutput,
    )
    from agent.config.resolution import ResolvedProfile

__all__ = [
    "FIELD_NAMES",
    "PRESETS",
    "PROFILE_ENV",
    "SECRET_FIELDS",
    "AzauthConfig",
    "Connection",
    "EnvFileOutput",
    "FederatedTokenFileOutput",
    "FieldName",
    "LoadedConfig",
    "Output",
    "PipelineVariablesOutput",
    "Profile",
    "ResolvedProfile",
    "Settings",
    "TokenFileOutput",
    "load_config",
]

# Lazy, so that importing a submodule (``agent.config.discovery``, used by the ``azauth token``
# fast path) does not load pydantic.
_LOCATIONS = dict.fromkeys(__all__, "agent.config.models") | {
    "PROFILE_ENV": "agent.config.loading",
    "LoadedConfig": "agent.config.loading",
    "load_config": "agent.config.loading",
    "ResolvedProfile": "agent.config.resolution",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _LOCATIONS)
