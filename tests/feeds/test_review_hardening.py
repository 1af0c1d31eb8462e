"""Hostile inputs found in review: look-alike URLs, user lines in npmrc, FIFOs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.exceptions import OutputError
from agent.feeds.render import FeedTarget, merge_npmrc, unmerge_npmrc
from agent.feeds.urls import parse_feed_url, route
from agent.feeds.writer import MergedNpmrc, read_text

TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiI0OTliODRhYyJ9.c2ln"
FABRIKAM = "https://pkgs.dev.azure.com/fabrikam/_packaging/shared"
CONTOSO = "https://pkgs.dev.azure.com/contoso/_packaging/other"
ROUTES = [(parse_feed_url(FABRIKAM), "A"), (parse_feed_url(CONTOSO), "B")]


class TestRouting:
    @pytest.mark.parametrize(
        "service",
        [
            f"{FABRIKAM}/../../../contoso/_packaging/other/pypi/simple/",
            f"{FABRIKAM}/%2e%2e/%2E%2E/%2e%2e/contoso/_packaging/other/pypi/simple/",
            f"{FABRIKAM}/pypi/./../../../../contoso/_packaging/other/",
            f"{FABRIKAM}/..%2f..%2f..%2fcontoso/_packaging/other/",
            f"{FABRIKAM}\\..\\..\\..\\contoso/_packaging/other/",
            f"{FABRIKAM}/%5c..%5c..%5c../contoso/_packaging/other/",
        ],
    )
    def test_dot_segments_are_never_routed(self, service: str) -> None:
        # Clients resolve dot segments before sending: the token of fabrikam's connection
        # would go to contoso's feed.
        assert route(service, ROUTES) is None

    @pytest.mark.parametrize(
        "url",
        [f"{FABRIKAM}/../x", f"{FABRIKAM}/%2E%2E/x", "https://pkgs.dev.azure.com/o/./_packaging/f"],
    )
    def test_a_feed_url_with_dot_segments_is_refused(self, url: str) -> None:
        with pytest.raises(ValueError, match=r"'\.' or '\.\.'"):
            parse_feed_url(url)

    @pytest.mark.parametrize(
        ("service", "expected"),
        [
            ("https://pkgs.dev.azure.com:443/fabrikam/_packaging/shared/pypi/simple/", "A"),
            ("https://PKGS.DEV.AZURE.COM:443/contoso/_packaging/other/pypi/upload/", "B"),
            ("https://pkgs.dev.azure.com:8443/fabrikam/_packaging/shared/pypi/simple/", None),
            ("http://pkgs.dev.azure.com:443/fabrikam/_packaging/shared/", None),
        ],
    )
    def test_the_default_port_is_the_same_host(self, service: str, expected: str | None) -> None:
        assert route(service, ROUTES) == expected

    def test_a_profile_url_with_the_default_port_matches_urls_without(self) -> None:
        location = parse_feed_url("https://pkgs.dev.azure.com:443/fabrikam/_packaging/shared")
        assert location.url == FABRIKAM
        loopback = parse_feed_url("http://127.0.0.1:80/o/_packaging/f")
        assert loopback.url == "http://127.0.0.1/o/_packaging/f"
        assert route(f"{FABRIKAM}/pypi/simple/", [(location, "A")]) == "A"
        assert route("http://127.0.0.1:80/o/_packaging/f/pypi/simple/", [(loopback, "L")]) == "L"


@pytest.mark.parametrize("org", ["a\x01b", "a b", "a\tb", "a\nb", "a\x7fb", "a\x0bb", "a\x00b"])
def test_a_feed_url_with_control_characters_is_refused(org: str) -> None:
    # They would make settings.xml ill-formed, or vanish (urlsplit drops tabs and line breaks).
    with pytest.raises(ValueError, match="control characters"):
        parse_feed_url(f"https://pkgs.dev.azure.com/{org}/_packaging/f")


FEED = FeedTarget("shared", parse_feed_url(FABRIKAM))
SCOPED = FeedTarget("other", parse_feed_url(CONTOSO), "@contoso")


class TestNpmrcUserLines:
    @pytest.mark.parametrize(
        "user",
        [
            "email=a\u2028b\r\nfoo=bar\r\n",  # CRLF, a line separator inside a value
            "x=form\x0cfeed\nnel=\x85\nlast=no-newline",
            "; comment\n\n\nregistry=https://registry.npmjs.org/\n",
            "registry=https://registry.npmjs.org/\r\n@contoso:registry=https://mirror/\r\n",
            (
                "//pkgs.dev.azure.com/fabrikam/_packaging/shared/npm/registry/:_authToken=PAT\n"
                "//pkgs.dev.azure.com/fabrikam/_packaging/shared/npm/:always-auth=true\nk=v\n"
            ),
        ],
    )
    def test_merge_then_unmerge_gives_every_user_line_back(self, user: str) -> None:
        merged = merge_npmrc(user, "A", [FEED, SCOPED], TOKEN)
        again = merge_npmrc(merged, "A", [FEED, SCOPED], TOKEN)  # a refresh
        assert again == merged
        restored = unmerge_npmrc(again, "A")
        # every non-blank line back, byte for byte (blank lines before the block are trimmed)
        assert sorted(filter(None, restored.split("\n"))) == sorted(filter(None, user.split("\n")))
        assert TOKEN not in restored

    def test_displaced_lines_are_inert_while_merged(self) -> None:
        user = "registry=https://registry.npmjs.org/\nk=v\n"
        merged = merge_npmrc(user, "A", [FEED], TOKEN)
        settings = [
            line.split("=", 1)[0]
            for line in merged.split("\n")
            if line and not line.startswith(";")
        ]
        assert settings.count("registry") == 1
        assert f"registry={parse_feed_url(FABRIKAM).npm_registry}" in merged.split("\n")

    def test_remove_on_exit_restores_the_users_registry(self, tmp_path: Path) -> None:
        path = tmp_path / ".npmrc"
        path.write_bytes(b"registry=https://registry.npmjs.org/\r\nemail=me@example.com")
        MergedNpmrc(str(path), "A", [FEED], TOKEN).write()
        assert TOKEN in path.read_text()
        assert MergedNpmrc.remove(str(path), "A")
        text = path.read_bytes()
        assert TOKEN.encode() not in text
        assert b"registry=https://registry.npmjs.org/\r" in text
        assert b"email=me@example.com" in text


@pytest.mark.parametrize("kind", ["fifo", "fifo-link"])
def test_npmrc_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path, kind: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    path = fifo
    if kind == "fifo-link":
        path = tmp_path / "npmrc"
        path.symlink_to(fifo)
    code = (
        "import sys\n"
        "from agent.exceptions import OutputError\n"
        "from agent.feeds.writer import read_text\n"
        "try:\n"
        f"    read_text({str(path)!r}, follow_symlinks=True)\n"
        "except OutputError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True
    )
    assert "not a regular file" in done.stdout


def test_merge_into_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / ".npmrc"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        read_text(str(fifo))  # O_NONBLOCK: returns at once
    with pytest.raises(OutputError, match="not a regular file"):
        MergedNpmrc(str(fifo), "A", [FEED], TOKEN).write()
