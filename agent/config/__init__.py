"""The profile file: models, loading (TOML/YAML, environment, precedence) and schema.

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
