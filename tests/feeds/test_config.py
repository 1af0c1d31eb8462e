"""Profile `feeds` and the feed output kinds: validation, inheritance, messages."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from agent.cli.main import main
from agent.config import load_config

CONNECTIONS = """
[connections.a]
tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
client_id = "11111111-2222-3333-4444-555555555555"
service_connection_id = "00000000-aaaa-bbbb-cccc-000000000001"

[connections.b]
tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
client_id = "11111111-2222-3333-4444-555555555556"
service_connection_id = "00000000-aaaa-bbbb-cccc-000000000002"
"""
FEED = "https://pkgs.dev.azure.com/contoso/azauth/_packaging/shared"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "azauth.toml"
    path.write_text(CONNECTIONS + dedent(body))
    return path


def test_feeds_resolve_with_inheritance(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        [profiles.base]
        connections = ["a"]
        [[profiles.base.feeds]]
        name = "shared"
        url = "{FEED}/pypi/simple/"

        [profiles.ci]
        extends = "base"
        connections = ["b"]
        [[profiles.ci.feeds]]
        name = "tools"
        url = "https://pkgs.dev.azure.com/fabrikam/_packaging/tools"
        connection = "b"
        npm_scope = "@fabrikam"
        [[profiles.ci.outputs]]
        kind = "npmrc"
        connection = "b"
        path = ".npmrc"
        [[profiles.ci.outputs]]
        kind = "feed_env_file"
        connection = "a"
        path = "feeds.env"
        dialect = "sh"
        [[profiles.ci.outputs]]
        kind = "maven_settings"
        connection = "a"
        path = "settings.xml"
        feeds = ["shared"]
        """,
    )
    profile = load_config(path).profile("ci")
    assert [(f.name, f.url, f.connection) for f in profile.feeds] == [
        ("shared", FEED, "a"),  # normalised down to the feed, connection filled in
        ("tools", "https://pkgs.dev.azure.com/fabrikam/_packaging/tools", "b"),
    ]
    npmrc, env_file, maven = profile.outputs
    assert [f.name for f in profile.feeds_for(npmrc)] == ["tools"]
    assert [f.name for f in profile.feeds_for(env_file)] == ["shared"]
    assert profile.scope_for(maven) == "499b84ac-1321-427f-aa17-267ca6975798/.default"


@pytest.mark.parametrize(
    ("body", "key_path", "phrase"),
    [
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.feeds]]\nname = "x"\n'
                'url = "https://pkgs.dev.azure.com/contoso/azauth/pypi/simple"\n'
            ),
            "profiles.ci.feeds[0].url",
            "/_packaging/FEED",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.feeds]]\nname = "x"\n'
                'url = "http://pkgs.example.com/contoso/_packaging/f"\n'
            ),
            "profiles.ci.feeds[0].url",
            "plain http is only allowed for loopback",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a", "b"]\n[[profiles.ci.feeds]]\nname = "x"\n'
                f'url = "{FEED}"\n'
            ),
            "profiles.ci.feeds[0].connection",
            "one of: a, b",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.feeds]]\nname = "x"\n'
                f'url = "{FEED}"\nconnection = "b"\n'
            ),
            "profiles.ci.feeds[0].connection",
            "not used by profile",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.feeds]]\nname = "x"\n'
                f'url = "{FEED}"\n[[profiles.ci.feeds]]\nname = "x"\nurl = "{FEED}2"\n'
            ),
            "profiles.ci.feeds[1].name",
            "defined twice",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.feeds]]\nname = "x"\n'
                f'url = "{FEED}"\nnpm_scope = "contoso"\n'
            ),
            "profiles.ci.feeds[0].npm_scope",
            "@contoso",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.feeds]]\nname = "shared"\n'
                f'url = "{FEED}"\n[[profiles.ci.outputs]]\nkind = "npmrc"\npath = ".npmrc"\n'
                'feeds = ["shard"]\n'
            ),
            "profiles.ci.outputs[0].feeds[0]",
            "did you mean 'shared'",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.outputs]]\nkind = "maven_settings"\n'
                'path = "settings.xml"\n'
            ),
            "profiles.ci.outputs[0].feeds",
            "reads no feed",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a"]\n[[profiles.ci.feeds]]\nname = "org"\n'
                'url = "https://pkgs.dev.azure.com/contoso"\n[[profiles.ci.outputs]]\n'
                'kind = "feed_env_file"\npath = "f.env"\nfeeds = ["org"]\n'
            ),
            "profiles.ci.outputs[0].feeds[0]",
            "names an organization",
        ),
        (
            (
                '[profiles.ci]\nconnections = ["a", "b"]\n[[profiles.ci.feeds]]\nname = "x"\n'
                f'url = "{FEED}"\nconnection = "a"\n[[profiles.ci.outputs]]\nkind = "npmrc"\n'
                'connection = "b"\npath = ".npmrc"\nfeeds = ["x"]\n'
            ),
            "profiles.ci.outputs[0].feeds[0]",
            "read by connection 'a', not 'b'",
        ),
    ],
)
def test_refused(tmp_path: Path, capsys, body: str, key_path: str, phrase: str) -> None:
    path = write(tmp_path, body)
    assert main(["validate", "--config", str(path)]) == 3
    err = capsys.readouterr().err
    assert key_path in err
    assert phrase in err
    assert "Traceback" not in err


def test_npmrc_outputs_of_two_connections_may_share_a_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        [profiles.ci]
        connections = ["a", "b"]
        [[profiles.ci.feeds]]
        name = "one"
        url = "{FEED}"
        connection = "a"
        [[profiles.ci.feeds]]
        name = "two"
        url = "https://pkgs.dev.azure.com/fabrikam/_packaging/two"
        connection = "b"
        npm_scope = "@fabrikam"
        [[profiles.ci.outputs]]
        kind = "npmrc"
        connection = "a"
        path = ".npmrc"
        [[profiles.ci.outputs]]
        kind = "npmrc"
        connection = "b"
        path = ".npmrc"
        """,
    )
    assert len(load_config(path).profile("ci").outputs) == 2


def test_feed_output_kinds_are_the_models_kinds() -> None:
    from typing import get_args

    from agent.config.models import (
        FEED_OUTPUT_KINDS,
        FeedEnvFileOutput,
        MavenSettingsOutput,
        NpmrcOutput,
    )

    kinds = {
        get_args(m.model_fields["kind"].annotation)[0]
        for m in (NpmrcOutput, MavenSettingsOutput, FeedEnvFileOutput)
    }
    assert kinds == FEED_OUTPUT_KINDS
