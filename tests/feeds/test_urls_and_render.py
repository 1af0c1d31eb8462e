"""Feed URLs, routing, and the client formats (npmrc merge, Maven settings.xml, variables)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from dotenv import dotenv_values

from agent.config.loading import load_config
from agent.exceptions import ConfigError
from agent.feeds.render import (
    FeedTarget,
    feed_variables,
    merge_npmrc,
    render_maven_settings,
    unmerge_npmrc,
    uv_index_variable,
)
from agent.feeds.urls import parse_feed_url, route
from agent.outputs.env_file import render_env_file
from tests.support import feed_profile

TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiI0OTliODRhYyJ9.c2ln"
FEED = "https://pkgs.dev.azure.com/contoso/azauth/_packaging/shared"


class TestParse:
    @pytest.mark.parametrize(
        ("url", "organization", "project", "feed", "base"),
        [
            (FEED, "contoso", "azauth", "shared", FEED),
            (f"{FEED}/pypi/simple/", "contoso", "azauth", "shared", FEED),
            (
                "https://pkgs.dev.azure.com/contoso/_packaging/org-feed@Release/npm/registry/",
                "contoso",
                None,
                "org-feed@Release",
                "https://pkgs.dev.azure.com/contoso/_packaging/org-feed@Release",
            ),
            (
                "https://contoso.pkgs.visualstudio.com/azauth/_packaging/shared/nuget/v3/index.json",
                "contoso",
                "azauth",
                "shared",
                "https://contoso.pkgs.visualstudio.com/azauth/_packaging/shared",
            ),
            (
                "https://pkgs.dev.azure.com/contoso",
                "contoso",
                None,
                None,
                "https://pkgs.dev.azure.com/contoso",
            ),
            (
                "http://127.0.0.1:8080/contoso/p/_packaging/f",
                "contoso",
                "p",
                "f",
                "http://127.0.0.1:8080/contoso/p/_packaging/f",
            ),
        ],
    )
    def test_shapes(self, url, organization, project, feed, base):
        location = parse_feed_url(url)
        assert (location.organization, location.project, location.feed) == (
            organization,
            project,
            feed,
        )
        assert location.url == base

    def test_endpoints(self):
        location = parse_feed_url(FEED)
        assert location.pypi_simple == f"{FEED}/pypi/simple/"
        assert location.pypi_upload == f"{FEED}/pypi/upload/"
        assert location.npm_registry == f"{FEED}/npm/registry/"
        assert location.nuget_index == f"{FEED}/nuget/v3/index.json"
        assert location.maven_repository == f"{FEED}/maven/v1"
        with pytest.raises(ValueError, match="organization, not a feed"):
            _ = parse_feed_url("https://pkgs.dev.azure.com/contoso").pypi_simple

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("http://pkgs.dev.azure.com/contoso/_packaging/f", "plain http"),
            (
                "https://user:secret@pkgs.dev.azure.com/contoso/_packaging/f",
                "secrets never go in URLs",
            ),
            ("https://pkgs.dev.azure.com/contoso/azauth/pypi/simple", "_packaging"),
            ("https://pkgs.dev.azure.com/_packaging/f", "organization"),
            ("ftp://pkgs.dev.azure.com/contoso", "http"),
            ("https://pkgs.dev.azure.com/contoso?x=1", "query"),
            # A look-alike host gets no token (the authority's rule, agent.urls.host_problem).
            ("https://pkgs.dév.azure.com/contoso/_packaging/f", "not ASCII"),
            ("https://pkgs.dev.azure.cоm/contoso/_packaging/f", "not ASCII"),  # Cyrillic o
            ("https://[::1/contoso/_packaging/f", "host is not valid"),
        ],
    )
    def test_refused(self, url, reason):
        with pytest.raises(ValueError, match=reason):
            parse_feed_url(url)


class TestRoute:
    routes = [
        (parse_feed_url(FEED), "feeds"),
        (parse_feed_url("https://pkgs.dev.azure.com/contoso/azauth/_packaging/other"), "other"),
        (parse_feed_url("https://pkgs.dev.azure.com/fabrikam"), "fabrikam"),
        (parse_feed_url("http://127.0.0.1:9000/contoso/_packaging/local"), "local"),
    ]

    @pytest.mark.parametrize(
        ("service", "expected"),
        [
            (f"{FEED}/pypi/simple/", "feeds"),
            (f"https://VssSessionToken@{FEED[8:]}/pypi/simple/azauth-feed-probe/", "feeds"),
            ("https://pkgs.dev.azure.com/contoso/azauth/_packaging/other/pypi/upload/", "other"),
            ("https://pkgs.dev.azure.com/CONTOSO/azauth/_packaging/SHARED/pypi/simple/", "feeds"),
            # another feed of a mapped organization: its connections disagree, so no answer
            ("https://pkgs.dev.azure.com/contoso/azauth/_packaging/third/pypi/simple/", None),
            # an organization URL covers every feed of it
            ("https://pkgs.dev.azure.com/fabrikam/x/_packaging/y/pypi/simple/", "fabrikam"),
            ("https://pkgs.dev.azure.com/northwind/_packaging/f/pypi/simple/", None),
            ("https://pypi.org/simple/", None),
            ("pypi.org", None),
            ("http://pkgs.dev.azure.com/contoso/azauth/_packaging/shared/pypi/simple/", None),
            ("http://127.0.0.1:9000/contoso/_packaging/local/npm/registry/", "local"),
            ("127.0.0.1:9000", "local"),
            ("https://127.0.0.1:9000/contoso/_packaging/local/", None),
            # a bare host whose feeds belong to different connections is ambiguous
            ("pkgs.dev.azure.com", None),
        ],
    )
    def test_route(self, service, expected):
        assert route(service, self.routes) == expected

    def test_bare_host_of_one_connection(self):
        routes = [(parse_feed_url(FEED), "feeds"), (parse_feed_url(f"{FEED[:-6]}other"), "feeds")]
        assert route("pkgs.dev.azure.com", routes) == "feeds"


def targets(*names_scopes):
    return [
        FeedTarget(
            name, parse_feed_url(f"https://pkgs.dev.azure.com/contoso/_packaging/{name}"), scope
        )
        for name, scope in names_scopes
    ]


class TestNpmrc:
    def test_new_file(self):
        text = merge_npmrc("", "artifacts", targets(("shared", None)), TOKEN)
        lines = text.splitlines()
        base = "//pkgs.dev.azure.com/contoso/_packaging/shared"
        assert lines[1:-1] == [
            "registry=https://pkgs.dev.azure.com/contoso/_packaging/shared/npm/registry/",
            f"{base}/npm/registry/:_authToken={TOKEN}",
            f"{base}/npm/:_authToken={TOKEN}",
        ]
        assert lines[0].startswith("; >>> azauth feeds (artifacts)")
        assert lines[-1] == "; <<< azauth feeds (artifacts)"

    def test_merge_keeps_other_lines_and_replaces_conflicting_ones(self):
        base = "//pkgs.dev.azure.com/contoso/_packaging/shared"
        existing = (
            "; my settings\n"
            "save-exact=true\n"
            "registry = https://registry.npmjs.org/\n"
            f"{base}/npm/registry/:_password=b2xk\n"
            "@other:registry=https://npm.example.invalid/\n"
            "//npm.example.invalid/:_authToken=keep-me\n"
        )
        once = merge_npmrc(existing, "artifacts", targets(("shared", None)), TOKEN)
        twice = merge_npmrc(once, "artifacts", targets(("shared", None)), "new.token.value")
        assert twice.startswith(
            "; my settings\nsave-exact=true\n@other:registry=https://npm.example.invalid/\n"
            "//npm.example.invalid/:_authToken=keep-me\n; >>> azauth feeds (artifacts)"
        )
        assert TOKEN not in twice
        assert twice.count("_authToken=new.token.value") == 2
        assert twice.count("; azauth saved: ") == 2  # displaced, inert, and given back:
        assert unmerge_npmrc(twice, "artifacts") == (
            "; my settings\nsave-exact=true\n@other:registry=https://npm.example.invalid/\n"
            "//npm.example.invalid/:_authToken=keep-me\n"
            "registry = https://registry.npmjs.org/\n"
            f"{base}/npm/registry/:_password=b2xk\n"
        )

    def test_two_connections_share_a_file(self):
        first = merge_npmrc("", "a", targets(("one", None)), "token.a.x")
        both = merge_npmrc(first, "b", targets(("two", "@two")), "token.b.x")
        assert "token.a.x" in both and "token.b.x" in both
        assert (
            "@two:registry=https://pkgs.dev.azure.com/contoso/_packaging/two/npm/registry/" in both
        )
        assert "token.b.x" not in unmerge_npmrc(both, "b")
        assert "token.a.x" in unmerge_npmrc(both, "b")

    def test_one_default_registry(self):
        with pytest.raises(ValueError, match="only one feed without npm_scope"):
            merge_npmrc("", "a", targets(("one", None), ("two", None)), TOKEN)

    def test_token_with_a_line_break_is_refused(self):
        with pytest.raises(ValueError, match="line break"):
            merge_npmrc("", "a", targets(("one", None)), "abc\nregistry=https://evil")


class TestMaven:
    def test_settings_format(self):
        data = render_maven_settings(targets(("shared", None), ("tools", None)), "a<b&c")
        root = ET.fromstring(data)
        ns = {"s": "http://maven.apache.org/SETTINGS/1.2.0"}
        assert root.tag == "{http://maven.apache.org/SETTINGS/1.2.0}settings"
        servers = root.findall("s:servers/s:server", ns)
        assert [s.findtext("s:id", namespaces=ns) for s in servers] == ["shared", "tools"]
        assert {s.findtext("s:username", namespaces=ns) for s in servers} == {"contoso"}
        assert {s.findtext("s:password", namespaces=ns) for s in servers} == {"a<b&c"}
        # Only elements of the settings-1.2.0 schema, in its order (servers is a child of
        # settings; id, username, password of server).
        assert [child.tag.split("}")[1] for child in root] == ["servers"]
        assert [c.tag.split("}")[1] for c in servers[0]] == ["id", "username", "password"]


class TestVariables:
    def test_nuget_uv_twine(self):
        variables = feed_variables(targets(("shared", None)), TOKEN)
        endpoints = json.loads(variables["VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"])
        assert endpoints == {
            "endpointCredentials": [
                {
                    "endpoint": "https://pkgs.dev.azure.com/contoso/_packaging/shared/nuget/v3/index.json",
                    "username": "azauth",
                    "password": TOKEN,
                }
            ]
        }
        assert variables["VSS_NUGET_ACCESSTOKEN"] == TOKEN
        assert (
            variables["VSS_NUGET_URI_PREFIXES"]
            == "https://pkgs.dev.azure.com/contoso/_packaging/shared/"
        )
        assert (
            variables["NuGetPackageSourceCredentials_shared"] == f"Username=azauth;Password={TOKEN}"
        )
        assert variables["UV_INDEX_SHARED_PASSWORD"] == TOKEN
        assert variables["TWINE_REPOSITORY_URL"].endswith("/_packaging/shared/pypi/upload/")
        assert not any(
            TOKEN in value for name, value in variables.items() if "URL" in name or "PREFIX" in name
        )

    def test_several_feeds(self):
        variables = feed_variables(targets(("a-b.c", None), ("d", None)), TOKEN)
        assert uv_index_variable("a-b.c", "USERNAME") == "UV_INDEX_A_B_C_USERNAME"
        assert "UV_INDEX_A_B_C_PASSWORD" in variables and "UV_INDEX_D_PASSWORD" in variables
        assert "NuGetPackageSourceCredentials_a-b.c" not in variables  # not a variable name
        assert not any(name.startswith("TWINE_") for name in variables)
        prefixes = variables["VSS_NUGET_URI_PREFIXES"].split(";")
        assert len(prefixes) == 2

    def test_round_trip_through_dotenv(self, tmp_path):
        variables = feed_variables(targets(("shared", None)), TOKEN)
        path = tmp_path / "feeds.env"
        path.write_text(render_env_file(variables, "dotenv"))
        assert dotenv_values(path) == variables


def test_a_profile_feed_on_a_look_alike_host_is_a_config_error(tmp_path):
    """Refused when the profile loads, naming the key (before: accepted, token written for it)."""
    path = tmp_path / "azauth.toml"
    path.write_text(feed_profile("https://pkgs.dév.azure.com/contoso/_packaging/f"))
    with pytest.raises(ConfigError, match="not ASCII") as refused:
        load_config(path, env={})
    assert refused.value.key_path is not None and "feeds" in refused.value.key_path
