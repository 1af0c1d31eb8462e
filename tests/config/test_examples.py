"""The shipped examples load, agree with each other, document every option; the schema is fresh."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.cli.main import main
from agent.config import (
    FIELD_NAMES,
    AzauthConfig,
    Connection,
    EnvFileOutput,
    FederatedTokenFileOutput,
    PipelineVariablesOutput,
    Profile,
    Settings,
    TokenFileOutput,
    load_config,
)
from agent.config.models import DockerConfigOutput, RegistryBinding
from agent.config.schema import render_json_schema
from tests.support import ROOT

TOML_EXAMPLE = ROOT / "azauth.toml.example"
YAML_EXAMPLE = ROOT / "azauth.yaml.example"
SCHEMA = ROOT / "schemas" / "azauth.schema.json"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_examples_load_to_the_same_configuration() -> None:
    """The TOML and YAML examples are valid and describe the same configuration."""
    toml = load_config(TOML_EXAMPLE, env={})
    yaml = load_config(YAML_EXAMPLE, env={})

    assert toml.config == yaml.config
    assert toml.config.model_dump() == yaml.config.model_dump()


def test_example_shows_a_multi_connection_profile() -> None:
    """The default profile uses two connections and every kind of output and preset asked for."""
    profile = load_config(TOML_EXAMPLE, env={}).profile()

    assert len(profile.connections) >= 2
    kinds = {type(output) for output in profile.outputs}
    assert kinds == {
        TokenFileOutput,
        FederatedTokenFileOutput,
        EnvFileOutput,
        PipelineVariablesOutput,
        DockerConfigOutput,
    }
    env_files = {(o.preset, o.dialect) for o in profile.outputs if isinstance(o, EnvFileOutput)}
    assert ("terraform", "dotenv") in env_files
    assert ("azure-identity", "sh") in env_files
    assert {o.connection for o in profile.outputs} == set(profile.connections)
    for output in profile.outputs:
        if not isinstance(output, PipelineVariablesOutput):
            assert output.path.startswith("out/")
    for connection in profile.connections.values():
        assert GUID.match(connection.client_id)
        assert GUID.match(connection.service_connection_id)


@pytest.mark.parametrize(
    ("path", "reference"),
    [
        (TOML_EXAMPLE, "#:schema ./schemas/azauth.schema.json"),
        (YAML_EXAMPLE, "# yaml-language-server: $schema=./schemas/azauth.schema.json"),
    ],
)
def test_examples_name_the_schema_on_their_first_line(path: Path, reference: str) -> None:
    """Editors find the schema through the first line."""
    assert path.read_text(encoding="utf-8").splitlines()[0] == reference


def test_toml_example_documents_every_option() -> None:
    """Every key of every model is set in the TOML example, and every mappable field named."""
    text = TOML_EXAMPLE.read_text(encoding="utf-8")
    models: list[type[BaseModel]] = [
        AzauthConfig, Settings, Connection, Profile,
        TokenFileOutput, FederatedTokenFileOutput, EnvFileOutput, PipelineVariablesOutput,
        DockerConfigOutput, RegistryBinding,
    ]  # fmt: skip

    for model in models:
        for key in model.model_fields:
            pattern = rf"^{key} = |{{ {key} = |^\[{key}[.\]]|^\[\[?profiles\.\w+\.{key}\]"
            assert re.search(pattern, text, re.MULTILINE), f"{model.__name__}.{key}"
    for field in FIELD_NAMES:
        assert field in text


def test_committed_schema_is_current() -> None:
    """schemas/azauth.schema.json is what `azauth schema` prints today.

    Regenerate with: python -m agent schema --output schemas/azauth.schema.json
    """
    assert SCHEMA.read_text(encoding="utf-8") == render_json_schema()


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`azauth schema` prints stable JSON with a 2-space indent and a final newline."""
    rc = main(["schema"])

    out = capsys.readouterr().out
    assert rc == 0
    assert out == SCHEMA.read_text(encoding="utf-8")
    assert out.endswith("}\n")
    assert out.splitlines()[1].startswith('  "$schema"')
    schema = json.loads(out)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "version",
        "default_profile",
        "settings",
        "connections",
        "profiles",
    }


def test_schema_command_writes_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`azauth schema --output FILE` writes the same text, creating the directory."""
    target = tmp_path / "schemas" / "azauth.schema.json"

    rc = main(["schema", "--output", str(target)])

    assert rc == 0
    assert capsys.readouterr().out == ""
    assert target.read_text(encoding="utf-8") == render_json_schema()
