"""The output-kind seam: every kind of the profile schema has one renderer, and a new kind is
its model plus one renderer — the runner, the plan and the listing need no change."""

from __future__ import annotations

import dataclasses
import io
import os
import re
from pathlib import Path
from typing import Annotated, Literal, get_args

import pytest

from agent.cli.profiles import render_profiles
from agent.config import load_config
from agent.config.models import Output, _OutputModel
from agent.exceptions import ExitCode
from agent.outputs.kinds import KINDS, OutputKind, Rendered, TokenSource, kind_of
from agent.plan import render_plan
from agent.runner import Runner, plan_connection
from agent.testing.emulator import Emulator

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "11111111-2222-3333-4444-555555555555"
SC = "00000000-aaaa-bbbb-cccc-000000000001"
PROFILE = f"""
[connections.prod]
tenant_id = "{TENANT}"
client_id = "{CLIENT}"
service_connection_id = "{SC}"

[profiles.ci]
connections = ["prod"]

[[profiles.ci.outputs]]
kind = "federated_token_file"
path = "out/prod.jwt"
"""
ROOT = Path(__file__).resolve().parents[2]
# The modules that deliver, plan, list and check outputs: they ask the models and the registry.
KIND_BLIND = [
    "agent/runner.py",
    "agent/plan.py",
    "agent/config/resolution.py",
    "agent/cli/profiles.py",
    "agent/registries/delivery.py",
    "agent/feeds/outputs.py",
    "agent/report.py",
    "agent/config/feeds.py",
    "agent/config/registry_checks.py",
    "agent/cli/run.py",
    "agent/cli/validate.py",
    "agent/cli/status.py",
]


def _models() -> list[type[_OutputModel]]:
    union = get_args(Output)[0]  # Annotated[Union[...], Field(discriminator="kind")]
    return list(get_args(union))


def _kind(model: type[_OutputModel]) -> str:
    (kind,) = get_args(model.model_fields["kind"].annotation)
    return str(kind)


def test_every_model_of_the_output_union_has_exactly_one_renderer():
    kinds = [_kind(model) for model in _models()]
    assert sorted(kinds) == sorted(KINDS), "a kind without a renderer (or a stale renderer)"
    for kind, renderer in KINDS.items():
        assert isinstance(renderer, OutputKind)
        assert renderer.kind == kind


def test_every_model_answers_through_the_output_base():
    for model in _models():
        assert issubclass(model, _OutputModel), model.__name__


@pytest.mark.parametrize("path", KIND_BLIND)
def test_delivery_planning_and_checks_never_compare_kind_strings(path):
    source = (ROOT / path).read_text()
    kinds = "|".join(KINDS)
    assert not re.search(r"\.kind\s*(==|!=|in\b|not in\b)", source)
    assert not re.search(rf"[\"']({kinds})[\"']", source), "a kind name typed outside its model"


# ---------------------------------------------------------------------------------------------
# A new kind, declared here the way a contributor would: a model and a renderer.


class ShoutingTokenFileOutput(_OutputModel):
    """An access token written upper-cased (a kind that exists only in this test)."""

    kind: Literal["shouting_token_file"]
    connection: str | None = None
    path: Annotated[str, "a file"]
    scope: str | None = None


class ShoutingTokenFileKind(OutputKind[ShoutingTokenFileOutput]):  # type: ignore[type-var]
    kind = "shouting_token_file"

    def render(self, output: ShoutingTokenFileOutput, source: TokenSource) -> Rendered:
        token = source.fields(output).access_token  # type: ignore[arg-type]
        assert token is not None
        return Rendered([(output.path, token.upper().encode())])


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "azauth.toml").write_text(PROFILE)
    return tmp_path


@pytest.fixture
async def emu(monkeypatch):
    async with Emulator() as emulator:
        emulator.add_connection(SC, TENANT, CLIENT)
        monkeypatch.setenv("SYSTEM_OIDCREQUESTURI", emulator.oidc_request_uri)
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", emulator.system_access_token)
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", emulator.authority)
        yield emulator


@pytest.fixture
def with_new_kind(workdir, monkeypatch):
    monkeypatch.setitem(KINDS, "shouting_token_file", ShoutingTokenFileKind())
    loaded = load_config()
    profile = loaded.profile("ci")
    shouting = ShoutingTokenFileOutput(
        kind="shouting_token_file", connection="prod", path="out/shout.token"
    )
    return dataclasses.replace(profile, outputs=[*profile.outputs, shouting])


async def test_a_new_kind_is_delivered_by_the_unchanged_runner(with_new_kind, workdir, emu):
    plan = plan_connection(with_new_kind, "prod")
    assert plan.scopes == ("https://management.azure.com/.default",)  # the model's default
    assert plan.needs_oidc  # the federated token file beside it
    async with Runner(with_new_kind, env=dict(os.environ), stdout=io.StringIO()) as runner:
        report = await runner.run_once()
    assert report.exit_code == ExitCode.OK
    token = (workdir / "out/shout.token").read_text()
    assert token == token.upper()
    assert "out/shout.token" in report.connections[0].delivered[plan.scopes[0]]
    assert (workdir / "out/prod.jwt").read_text().count(".") == 2
    assert kind_of(with_new_kind.outputs[-1]).kind == "shouting_token_file"


def test_a_new_kind_is_planned_and_listed_without_changes(with_new_kind, workdir, monkeypatch):
    plan = render_plan(with_new_kind, {})
    assert f"(shouting_token_file, connection prod): write {workdir / 'out/shout.token'}" in plan
    assert "acquire https://management.azure.com/.default" in plan
    loaded = load_config()
    monkeypatch.setattr(type(loaded), "profile", lambda _self, _name: with_new_kind)
    listing = render_profiles(loaded, "ci")
    assert (
        "shouting_token_file -> out/shout.token "
        "(connection prod; scope https://management.azure.com/.default)" in listing
    )
