"""The JSON Schema of the profile file, generated from the models.

``schemas/azauth.schema.json`` is :func:`render_json_schema` committed; a test fails when it is
stale. Editors use it for completion (Taplo's ``#:schema`` comment in TOML, the
yaml-language-server's ``# yaml-language-server: $schema=`` comment in YAML). azauth itself never
reads it: pydantic is the validator.
"""

from __future__ import annotations

import json
from typing import Any

from agent.config.models import AzauthConfig

__all__ = ["JSON_SCHEMA_DIALECT", "SCHEMA_PATH", "json_schema", "render_json_schema"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_PATH = "schemas/azauth.schema.json"
"""Where the schema is committed, relative to the repository root."""


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a profile file (as validated, i.e. the input form)."""
    schema = AzauthConfig.model_json_schema(mode="validation")
    _close_named_tables(schema)
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def _close_named_tables(node: object) -> None:
    """Refuse keys outside ``patternProperties`` (bad connection names), as the models do."""
    if isinstance(node, dict):
        if "patternProperties" in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _close_named_tables(value)
    elif isinstance(node, list):
        for item in node:
            _close_named_tables(item)


def render_json_schema() -> str:
    """Return :func:`json_schema` as text: 2-space indent, keys in model order, final newline."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
