"""`azauth git-credential`: the protocol, the command, and real git against a loopback server."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.cli.main import main
from agent.credential_helpers.protocols import (
    AZURE_REPOS_SCOPE,
    TokenDetails,
    parse_git_credential,
    read_git_credential,
    render_git_credential,
)
from agent.testing.emulator import Emulator
from tests.support import AZAUTH, CLIENT, SC, TENANT, python_program, spawn_azauth

AZURE_DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798"
REQUEST = "protocol=https\nhost=dev.azure.com\npath=contoso/azauth/_git/azauth\n\n"
# agent.config.discovery is import-light on purpose; config loading must stay out.
HEAVY = (
    "aiohttp",
    "pydantic",
    "structlog",
    "azure",
    "agent.config.loading",
    "agent.config.models",
    "agent.exceptions",
)
PROBE = python_program("entry_point_modules.py", "main", ",".join(HEAVY))


def details(token: str = "eyJ0eXAi.eyJhdWQi.c2ln") -> TokenDetails:
    return TokenDetails(
        access_token=token,
        token_type="Bearer",
        expires_on=1_800_000_000,
        tenant=TENANT,
        scopes=(AZURE_REPOS_SCOPE,),
        client_id=CLIENT,
        subscription=None,
        connection="default",
        profile="default",
    )


def answer(text: str) -> dict[str, str]:
    """git's view of a helper answer: key=value lines."""
    return dict(line.split("=", 1) for line in text.splitlines() if line)


@pytest.fixture(autouse=True)
def workspace(empty_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and home (no git config), and a private cache directory."""
    for name in ("XDG_CACHE_HOME", "GIT_ASKPASS", "SSH_ASKPASS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setenv("AZAUTH_CACHE_DIR", str(tmp_path / "cache"))
    return empty_home


@pytest.fixture
def pipeline(connected_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, and the AZURESUBSCRIPTION_* variables of its connection (no file)."""
    monkeypatch.setenv("AZURESUBSCRIPTION_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURESUBSCRIPTION_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", SC)
    return connected_emulator


async def helper(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: str,
    *args: str,
) -> tuple[int, str, str]:
    """Run `azauth git-credential ARGS` in-process with ``stdin`` as git's request."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = await asyncio.to_thread(main, ["git-credential", *args])
    out, err = capsys.readouterr()
    return code, out, err


async def run(
    *command: str, stdin: str = "", cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a real process without blocking the emulator's event loop."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    return subprocess.CompletedProcess(
        list(command), process.returncode, out.decode(), err.decode()
    )


def helper_setting() -> str:
    """credential.helper value running this interpreter's azauth (a shell snippet)."""
    return "!" + shlex.join([*AZAUTH, "git-credential"])


class TestProtocol:
    def test_parse(self) -> None:
        """Attributes up to the blank line; later lines belong to nobody."""
        request = parse_git_credential(
            "protocol=https\nhost=dev.azure.com:443\nwwwauth[]=Basic realm=x\n"
            "capability[]=authtype\ncapability[]=state\n\nprotocol=http\n"
        )

        assert request.protocol == "https"
        assert request.host == "dev.azure.com:443"
        assert request.capabilities == {"authtype", "state"}
        assert request.wants_authtype
        assert request.lists["wwwauth"] == ["Basic realm=x"]

    def test_empty_value_resets_a_list(self) -> None:
        """`key[]=` with no value empties the list, as the protocol says."""
        request = parse_git_credential("capability[]=authtype\ncapability[]=\n")

        assert not request.wants_authtype

    def test_url_is_broken_into_parts(self) -> None:
        """A url attribute fills protocol, host and path."""
        request = parse_git_credential("url=https://me@dev.azure.com/contoso/_git/repo\n")

        assert (request.protocol, request.host) == ("https", "dev.azure.com")
        assert request.attributes["path"] == "contoso/_git/repo"

    def test_crlf_and_eof(self) -> None:
        """CRLF line ends and a missing final blank line are accepted."""
        request = parse_git_credential("protocol=https\r\nhost=example.com")

        assert (request.protocol, request.host) == ("https", "example.com")

    def test_read_stops_at_the_blank_line(self) -> None:
        """Reading takes the request and its blank line, and leaves what follows unread."""
        stream = io.StringIO("protocol=https\nhost=h\n\nextra=1\n")

        assert read_git_credential(stream) == "protocol=https\nhost=h\n\n"
        assert stream.read() == "extra=1\n"

    def test_line_without_equals(self) -> None:
        """A line that is not key=value is refused."""
        with pytest.raises(ValueError, match="key=value"):
            parse_git_credential("protocol=https\ngarbage\n")

    def test_repr_hides_attributes(self) -> None:
        """A request's repr never shows what git sent (it may hold a password)."""
        request = parse_git_credential("protocol=https\nhost=h\npassword=hunter2-secret\n")

        assert "hunter2" not in repr(request)

    def test_basic_answer(self) -> None:
        """Without authtype: username, the token as password, and its expiry."""
        text = render_git_credential(details(), authtype=False)

        assert text == (
            "username=azauth\npassword=eyJ0eXAi.eyJhdWQi.c2ln\npassword_expiry_utc=1800000000\n"
        )

    def test_authtype_answer(self) -> None:
        """With authtype: a Bearer credential, ephemeral, and no password."""
        text = render_git_credential(details(), authtype=True)

        assert text == (
            "capability[]=authtype\nauthtype=Bearer\ncredential=eyJ0eXAi.eyJhdWQi.c2ln\n"
            "ephemeral=true\n"
        )

    def test_token_the_protocol_cannot_carry(self) -> None:
        """A newline would inject attributes: refused."""
        with pytest.raises(ValueError, match="cannot be sent"):
            render_git_credential(details("abc\npassword=x"), authtype=False)


class TestCommand:
    async def test_get(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """get answers an Azure DevOps token as the password, with its expiry."""
        code, out, err = await helper(capsys, monkeypatch, REQUEST, "get")

        fields = answer(out)
        claims = pipeline.verify_access_token(fields["password"], audience=AZURE_DEVOPS)
        assert (code, err) == (0, "")
        assert sorted(fields) == ["password", "password_expiry_utc", "username"]
        assert fields["username"] == "azauth"
        assert int(fields["password_expiry_utc"]) == claims["exp"]

    async def test_get_with_authtype(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """When git announces authtype, the token goes as a Bearer credential."""
        request = "capability[]=authtype\n" + REQUEST

        code, out, _ = await helper(capsys, monkeypatch, request, "get")

        fields = answer(out)
        assert code == 0
        assert fields["capability[]"] == "authtype"
        assert fields["authtype"] == "Bearer"
        assert fields["ephemeral"] == "true"
        assert "password" not in fields
        pipeline.verify_access_token(fields["credential"], audience=AZURE_DEVOPS)

    async def test_scope_flag(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """--scope replaces the Azure DevOps scope."""
        code, out, _ = await helper(
            capsys, monkeypatch, REQUEST, "--scope", "https://vault.azure.net/.default", "get"
        )

        assert code == 0
        pipeline.verify_access_token(answer(out)["password"], audience="https://vault.azure.net")

    @pytest.mark.parametrize("host", ["example.com", "dev.azure.com:80", "10.1.2.3"])
    async def test_plain_http_elsewhere_is_refused(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        host: str,
    ) -> None:
        """A token is never sent over plain http to a non-loopback host."""
        code, out, err = await helper(capsys, monkeypatch, f"protocol=http\nhost={host}\n\n", "get")

        assert (code, out) == (2, "")
        assert "plain http" not in out
        assert f"http://{host}" in err
        assert pipeline.counts == {"oidc": 0, "token": 0}

    @pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "[::1]:3000"])
    async def test_plain_http_to_loopback_is_allowed(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        host: str,
    ) -> None:
        """Loopback hosts (local servers, tests) may use plain http."""
        code, out, _ = await helper(capsys, monkeypatch, f"protocol=http\nhost={host}\n\n", "get")

        assert code == 0
        assert "password" in answer(out)

    @pytest.mark.parametrize("operation", ["store", "frobnicate"])
    async def test_other_operations_do_nothing(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        operation: str,
    ) -> None:
        """store and unknown operations exit 0 silently and ask for nothing."""
        request = REQUEST.replace("\n\n", "\nusername=azauth\npassword=x\n\n")

        code, out, err = await helper(capsys, monkeypatch, request, operation)

        assert (code, out, err) == (0, "", "")
        assert pipeline.counts == {"oidc": 0, "token": 0}

    async def test_erase_forgets_the_refused_token(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """erase drops the cache entry only when it holds the refused password."""
        _, out, _ = await helper(capsys, monkeypatch, REQUEST, "get")
        password = answer(out)["password"]
        other = REQUEST.replace("\n\n", "\nusername=azauth\npassword=not-ours\n\n")
        ours = REQUEST.replace("\n\n", f"\nusername=azauth\npassword={password}\n\n")

        code, out, _ = await helper(capsys, monkeypatch, other, "erase")
        assert (code, out) == (0, "")
        assert len(list((tmp_path / "cache").glob("*.token"))) == 1

        code, out, _ = await helper(capsys, monkeypatch, ours, "erase")
        assert (code, out) == (0, "")
        assert list((tmp_path / "cache").glob("*.token")) == []

        _, out, _ = await helper(capsys, monkeypatch, REQUEST, "get")
        assert answer(out)["password"] != password
        assert pipeline.counts["token"] == 2

    async def test_shares_the_cache_with_azauth_token(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """`azauth token --scope <Azure DevOps>` gets the token git-credential cached."""
        _, out, _ = await helper(capsys, monkeypatch, REQUEST, "get")
        code = await asyncio.to_thread(main, ["token", "--scope", AZURE_REPOS_SCOPE])
        token_out = capsys.readouterr().out

        assert code == 0
        assert token_out.strip() == answer(out)["password"]
        assert pipeline.counts == {"oidc": 1, "token": 1}

    @pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
    async def test_answers_while_stdin_stays_open(self, pipeline: Emulator, warm: bool) -> None:
        """The answer comes after the blank line, even if the caller has not closed stdin."""
        if warm:
            await run(*AZAUTH, "git-credential", "get", stdin=REQUEST)
        process = await spawn_azauth("git-credential", "get", stdin=asyncio.subprocess.PIPE)
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(REQUEST.encode())
        await process.stdin.drain()
        try:
            out = await asyncio.wait_for(process.stdout.read(), 60)
            code = await asyncio.wait_for(process.wait(), 60)
        finally:
            process.stdin.close()
            if process.returncode is None:
                process.kill()
                await process.wait()

        assert code == 0
        pipeline.verify_access_token(answer(out.decode())["password"])
        assert pipeline.counts["token"] == 1

    async def test_configuration_error(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without a configuration, get fails with exit 3 and prints no attribute."""
        code, out, err = await helper(capsys, monkeypatch, REQUEST, "get")

        assert (code, out) == (3, "")
        assert err.startswith("azauth: error: ")

    async def test_warm_get_is_answered_by_the_fast_path(
        self,
        pipeline: Emulator,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A cached token answers git without importing the heavy libraries."""
        _, expected, _ = await helper(capsys, monkeypatch, REQUEST, "get")

        result = await run(*PROBE, "git-credential", "get", stdin=REQUEST)

        assert result.returncode == 0
        assert result.stdout == expected
        assert "LOADED=\n" in result.stderr
        # A request the warm path does not answer (plain http) reaches the full command intact.
        result = await run(
            *PROBE,
            "git-credential",
            "get",
            stdin="protocol=http\nhost=localhost:1\n\n",
        )
        assert result.returncode == 0
        assert "password=" in result.stdout
        assert "agent.config.loading" in result.stderr
        assert pipeline.counts["token"] == 1


# ------------------------------------------------------------------------------------------------
# Real git


class _AuthRecorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def add(self, outcome: str, path: str) -> None:
        with self.lock:
            self.events.append((outcome, path))


class _BasicAuthHandler(SimpleHTTPRequestHandler):
    """Static files (a dumb-protocol git repository) behind Basic auth with an Entra token."""

    emulator: Emulator
    recorder: _AuthRecorder

    def do_GET(self) -> None:
        if self._authorized():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._authorized():
            super().do_HEAD()

    def _authorized(self) -> bool:
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "basic":
            user, _, password = base64.b64decode(value).decode().partition(":")
            try:
                self.emulator.verify_access_token(password, audience=AZURE_DEVOPS)
            except ValueError:
                pass
            else:
                self.recorder.add(f"ok:{user}", self.path)
                return True
        self.recorder.add("401", self.path)
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="azauth test"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def git_server(pipeline: Emulator, tmp_path: Path) -> Iterator[tuple[str, str, _AuthRecorder]]:
    """A bare repository served over dumb HTTP on 127.0.0.1 behind Basic auth.

    Yields the repository URL, the commit of its main branch and the recorder of requests.
    """
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "init.defaultBranch=main",
    ]
    source = tmp_path / "source"
    subprocess.run([*git, "init", "-q", str(source)], check=True)
    (source / "README.md").write_text("hello from azauth\n")
    subprocess.run([*git, "-C", str(source), "add", "README.md"], check=True)
    subprocess.run([*git, "-C", str(source), "commit", "-qm", "first"], check=True)
    commit = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    root = tmp_path / "served"
    root.mkdir()
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(source), str(root / "repo.git")], check=True
    )
    subprocess.run(["git", "-C", str(root / "repo.git"), "update-server-info"], check=True)

    recorder = _AuthRecorder()
    handler = type("Handler", (_BasicAuthHandler,), {"emulator": pipeline, "recorder": recorder})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/repo.git", commit, recorder
    finally:
        server.shutdown()
        server.server_close()


class TestRealGit:
    async def test_git_credential_fill(self, pipeline: Emulator) -> None:
        """`git credential fill` through the configured helper yields a valid token."""
        result = await run(
            "git",
            "-c",
            "credential.helper=",
            "-c",
            f"credential.helper={helper_setting()}",
            "credential",
            "fill",
            stdin=REQUEST,
        )

        fields = answer(result.stdout)
        assert result.returncode == 0, result.stderr
        assert fields["protocol"] == "https"
        assert fields["host"] == "dev.azure.com"
        assert fields["username"] == "azauth"
        pipeline.verify_access_token(fields["password"], audience=AZURE_DEVOPS)

    async def test_url_scoped_helper_only_answers_its_host(self, pipeline: Emulator) -> None:
        """credential.<url>.helper limits the helper to that URL: other hosts get nothing."""
        config = ["-c", f"credential.https://dev.azure.com.helper={helper_setting()}"]

        ours = await run("git", *config, "credential", "fill", stdin=REQUEST)
        theirs = await run(
            "git", *config, "credential", "fill", stdin="protocol=https\nhost=github.com\n\n"
        )

        assert ours.returncode == 0
        pipeline.verify_access_token(answer(ours.stdout)["password"])
        assert theirs.returncode != 0
        assert "password=" not in theirs.stdout
        assert pipeline.counts["token"] == 1

    async def test_ls_remote_and_clone_over_http(
        self, git_server: tuple[str, str, _AuthRecorder], tmp_path: Path
    ) -> None:
        """Real git meets a 401, asks azauth, and reads the repository with the token."""
        url, commit, recorder = git_server

        refused = await run("git", "-c", "credential.helper=", "ls-remote", url)
        assert refused.returncode != 0
        assert recorder.events
        assert {outcome for outcome, _ in recorder.events} == {"401"}
        recorder.events.clear()

        helper_config = ["-c", "credential.helper=", "-c", f"credential.helper={helper_setting()}"]
        listed = await run("git", *helper_config, "ls-remote", url)
        assert listed.returncode == 0, listed.stderr
        assert f"{commit}\trefs/heads/main" in listed.stdout
        assert recorder.events[0][0] == "401"
        assert ("ok:azauth", "/repo.git/info/refs?service=git-upload-pack") in recorder.events

        clone = tmp_path / "clone"
        cloned = await run("git", *helper_config, "clone", "-q", url, str(clone))
        assert cloned.returncode == 0, cloned.stderr
        assert (clone / "README.md").read_text() == "hello from azauth\n"
