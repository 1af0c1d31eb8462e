"""Env file dialects, read back by their real consumers.

* dotenv: python-dotenv's ``dotenv_values``;
* sh: bash and dash, with ``. file`` and ``set -a; . file``;
* docker: the real ``docker`` CLI (``docker run --env-file``) talking to a fake daemon on a
  Unix socket that records the container's ``Env`` (the CLI parses the file, not the daemon);
* systemd: systemd's own env-file parser through ``systemd-environment-d-generator`` (same
  parser as ``EnvironmentFile=``; environment.d additionally expands ``$``, so values with ``$``
  are covered by golden strings instead);
* pwsh: PowerShell, when installed.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from dotenv.main import DotEnv

from agent.outputs._atomic import atomic_write
from agent.outputs.env_file import DIALECTS, DOCKER_MAX_LINE_BYTES, HEADER, render_env_file

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzYzovL29yZy9wcm9qL2Nvbm4ifQ.c2lnbmF0dXJl-_x"

# Single-line values every dialect must carry exactly (NUL aside, the nastiest we could think of).
NASTY: dict[str, str] = {
    "JWT": JWT,
    "PLAIN_PATH": "/agent/_work/_temp/azauth/token",
    "SPACES": "a b  c",
    "SQUOTE": "it's",
    "DQUOTE": 'say "hi"',
    "DOLLAR": "$HOME and $ and $1",
    "BRACE": "${HOME}",
    "BRACE_DEFAULT": "${NOPE:-fallback}",
    "DOUBLE_DOLLAR": "$${HOME}$",
    "BACKSLASH": "C:\\path\\n\\t\\\\end\\",
    "HASH": "a #b",
    "HASH_START": "#start",
    "EQUALS": "a=b=c",
    "UNICODE": "héllo wörld ☃ 日本 🚀",
    "LEADING_TRAILING": "  padded  ",
    "EMPTY": "",
    "PERCENT": "100% %3B %AZP25 %0A",
    "BACKTICK": "`whoami` $(id)",
    "BACKTICK_ONLY": "`whoami`",
    "SEMICOLON": "a;b",
    "TAB": "a\tb",
    "TYPOGRAPHIC_QUOTES": "‘single’ ‚low‛",
    "MIXED": "'\"\\$`{}[]*?~!&|<>()",
}
MULTILINE: dict[str, str] = {"NEWLINE": "line1\nline2\n", "CRLF": "a\r\nb", "ONLY_CR": "x\ry"}
# Characters Python's str.splitlines() treats as line breaks but env-file readers do not.
ODD_BREAKS: dict[str, str] = {"ODD_BREAKS": "a\x0bb\x0cc\x1cd\x85e\u2028f\x1bg"}


def write(tmp_path: Path, values: dict[str, str], dialect: str) -> Path:
    path = tmp_path / f"vars.{dialect}"
    atomic_write(path, render_env_file(values, dialect).encode("utf-8"))
    return path


def clean_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/home/test", **extra}


def env_from_nul_list(output: bytes) -> dict[str, str]:
    result = {}
    for item in output.decode("utf-8").split("\0"):
        if item:
            name, _, value = item.partition("=")
            result[name] = value
    return result


class TestCommon:
    @pytest.mark.parametrize("dialect", DIALECTS)
    def test_header_order_and_trailing_newline(self, dialect):
        """Every dialect starts with the header comment, keeps order and ends with a newline."""
        text = render_env_file({"B": "2", "A": "1"}, dialect).removeprefix("\ufeff")

        lines = text.split("\n")
        assert lines[0] == HEADER
        assert "B" in lines[1]
        assert "A" in lines[2]
        assert lines[3] == ""

    @pytest.mark.parametrize("dialect", DIALECTS)
    @pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "export A", "A=B", "É"])
    def test_invalid_names_are_refused(self, dialect, name):
        """Names outside [A-Za-z_][A-Za-z0-9_]* are refused."""
        with pytest.raises(ValueError, match="invalid environment variable name"):
            render_env_file({name: "x"}, dialect)

    @pytest.mark.parametrize("dialect", DIALECTS)
    def test_nul_is_refused_naming_the_variable_not_the_value(self, dialect):
        """NUL fits in no environment: ValueError with the name and without the value."""
        with pytest.raises(ValueError) as caught:
            render_env_file({"OK": "fine", "BAD_ONE": "SECRET\0VALUE"}, dialect)

        assert "BAD_ONE" in str(caught.value)
        assert "SECRET" not in str(caught.value)

    @pytest.mark.parametrize("dialect", DIALECTS)
    def test_lone_surrogate_is_refused(self, dialect):
        """Text that cannot be encoded as UTF-8 is refused, naming the variable."""
        with pytest.raises(ValueError, match="SURROGATE"):
            render_env_file({"SURROGATE": "a\udc80b"}, dialect)

    def test_unknown_dialect(self):
        """An unknown dialect is a ValueError listing the known ones."""
        with pytest.raises(ValueError, match="dotenv, docker, systemd, sh, pwsh"):
            render_env_file({"A": "1"}, "ini")

    @pytest.mark.parametrize("dialect", DIALECTS)
    def test_written_file_is_private(self, tmp_path, dialect):
        """Env files written through atomic_write are 0600."""
        path = write(tmp_path, {"A": "1"}, dialect)

        assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)


class TestDotenv:
    def test_golden(self):
        """Plain values stay bare; others are double-quoted with escapes and ${ neutralised."""
        text = render_env_file(
            {"A": JWT, "B": 'x "y" \\z', "C": "${HOME}", "D": "", "E": "l1\nl2"}, "dotenv"
        )

        assert text == (
            f'{HEADER}\nA={JWT}\nB="x \\"y\\" \\\\z"\nC="${{=:-$}}{{HOME}}"\nD=""\nE="l1\\nl2"\n'
        )

    def test_python_dotenv_reads_back_every_value(self, tmp_path, monkeypatch):
        """dotenv_values returns exactly the intended values, with interpolation on (the default)."""
        monkeypatch.setenv("HOME", "/home/should-not-appear")
        monkeypatch.setenv("NOPE", "should-not-appear")
        values = {**NASTY, **MULTILINE, **ODD_BREAKS}
        path = write(tmp_path, values, "dotenv")

        assert dict(dotenv_values(path)) == values

    def test_python_dotenv_without_os_environment_override(self, tmp_path, monkeypatch):
        """The same holds when the file's own values take part in interpolation."""
        values = {"HOME": "from-file", "REF": "${HOME}", "REF2": "$${HOME}"}
        path = write(tmp_path, values, "dotenv")

        assert dict(DotEnv(path, override=False).dict()) == values
        assert dict(DotEnv(path, override=True).dict()) == values


class TestShell:
    SHELLS = [shell for shell in ("bash", "dash") if shutil.which(shell)]

    @pytest.mark.parametrize("shell", SHELLS)
    @pytest.mark.parametrize("mode", ["source", "set -a; source"])
    def test_shells_read_back_every_value(self, tmp_path, shell, mode):
        """bash and dash get exactly the intended values from '. file' and 'set -a; . file'."""
        values = {**NASTY, **MULTILINE, **ODD_BREAKS}
        path = write(tmp_path, values, "sh")
        script = ('set -a; . "$1"' if mode.startswith("set -a") else '. "$1"') + "; env -0"

        output = subprocess.run(
            [shell, "-c", script, "sh", str(path)],
            capture_output=True,
            env=clean_env(NOPE="outer"),
            check=True,
        ).stdout

        environment = env_from_nul_list(output)
        assert {name: environment.get(name) for name in values} == values

    def test_golden(self):
        """sh lines are export NAME='...' with '\\'' for quotes."""
        assert render_env_file({"A": "it's", "B": ""}, "sh") == (
            f"{HEADER}\nexport A='it'\\''s'\nexport B=''\n"
        )


@pytest.fixture(scope="module")
def fake_docker_daemon() -> Iterator[tuple[str, list[list[str]]]]:
    """A Docker Engine API stand-in on a Unix socket that records each container's Env."""
    created: list[list[str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Api-Version", "1.41")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._answer(200, b"")

        def do_GET(self) -> None:
            self._answer(200, b"OK")

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if "/containers/create" in self.path:
                created.append(json.loads(body)["Env"])
            # Refuse, so the CLI stops right after handing over the parsed env file.
            self._answer(500, json.dumps({"message": "fake daemon: recorded"}).encode())

        def log_message(self, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    directory = tempfile.mkdtemp(prefix="azd")  # short: socket paths are limited to ~100 bytes
    socket_path = os.path.join(directory, "docker.sock")
    server = Server(socket_path, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield socket_path, created
    server.shutdown()
    server.server_close()
    thread.join()
    shutil.rmtree(directory, ignore_errors=True)


def docker_env(socket_path: str, created: list[list[str]], env_file: Path, tmp_path: Path):
    """Run the real docker CLI with --env-file; return (Env list or None, stderr)."""
    before = len(created)
    result = subprocess.run(
        ["docker", "run", "--rm", "--env-file", str(env_file), "azauth-test-image", "true"],
        capture_output=True,
        text=True,
        env=clean_env(DOCKER_HOST=f"unix://{socket_path}", DOCKER_CONFIG=str(tmp_path)),
        timeout=60,
        check=False,
    )
    env = created[before] if len(created) > before else None
    return env, result.stderr


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")
class TestDockerClient:
    def test_docker_cli_reads_back_every_value(self, tmp_path, fake_docker_daemon):
        """The docker CLI passes exactly the intended NAME=value pairs to the daemon."""
        socket_path, created = fake_docker_daemon
        values = {**NASTY, **ODD_BREAKS}
        path = write(tmp_path, values, "docker")

        env, stderr = docker_env(socket_path, created, path, tmp_path)

        assert env == [f"{name}={value}" for name, value in values.items()], stderr

    def test_longest_accepted_line_is_read(self, tmp_path, fake_docker_daemon):
        """A line of exactly DOCKER_MAX_LINE_BYTES bytes is still read by docker."""
        socket_path, created = fake_docker_daemon
        value = "x" * (DOCKER_MAX_LINE_BYTES - len("BIG="))
        path = write(tmp_path, {"BIG": value}, "docker")

        env, stderr = docker_env(socket_path, created, path, tmp_path)

        assert env == [f"BIG={value}"], stderr

    def test_docker_itself_rejects_the_line_we_refuse(self, tmp_path, fake_docker_daemon):
        """One byte more and docker fails; that is why render_env_file refuses such lines."""
        socket_path, created = fake_docker_daemon
        value = "x" * (DOCKER_MAX_LINE_BYTES + 1 - len("BIG="))
        path = tmp_path / "too-long.env"
        path.write_text(f"BIG={value}\n")

        env, stderr = docker_env(socket_path, created, path, tmp_path)

        assert env is None
        assert "token too long" in stderr
        with pytest.raises(ValueError, match="BIG"):
            render_env_file({"BIG": value}, "docker")


class TestDockerRules:
    def test_golden(self):
        """docker lines are NAME=value verbatim: no quotes, no escapes."""
        assert render_env_file({"A": ' "q" $X #c ', "B": ""}, "docker") == (
            f'{HEADER}\nA= "q" $X #c \nB=\n'
        )

    @pytest.mark.parametrize("value", ["a\nb", "a\rb", "trailing\n"])
    def test_line_breaks_are_refused(self, value):
        """Values docker cannot hold (line breaks) are refused, naming the variable."""
        with pytest.raises(ValueError, match="MULTI.*line break"):
            render_env_file({"MULTI": value}, "docker")

    def test_too_long_line_is_refused(self):
        """A line docker's scanner cannot read is refused (multi-byte characters count as bytes)."""
        value = "é" * (DOCKER_MAX_LINE_BYTES // 2)

        with pytest.raises(ValueError, match="LONG"):
            render_env_file({"LONG": value}, "docker")


GENERATOR = Path("/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator")


def decode_systemd_output(line_value: str) -> str:
    """Decode a value as systemd's generator prints it (shell_maybe_quote: "..." + C escapes)."""
    if not line_value.startswith('"'):
        return line_value
    assert line_value.endswith('"')
    body = line_value[1:-1]
    simple = {"t": "\t", "n": "\n", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
    out = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            following = body[index + 1]
            if following == "x":
                out.append(chr(int(body[index + 2 : index + 4], 16)))
                index += 4
                continue
            out.append(simple.get(following, following))
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


class TestSystemd:
    def test_golden(self):
        """Plain values stay bare; others are double-quoted with \\ before \" \\ ` $."""
        text = render_env_file(
            {"A": JWT, "B": 'x "y" \\z `c` $D', "C": "", "D": " pad\t"}, "systemd"
        )

        assert text == (f'{HEADER}\nA={JWT}\nB="x \\"y\\" \\\\z \\`c\\` \\$D"\nC=\nD=" pad\t"\n')

    @pytest.mark.parametrize("value", ["a\nb", "a\rb", "bell\a", "esc\x1b[0m", "del\x7f"])
    def test_control_characters_are_refused(self, value):
        """Control characters other than tab are refused, naming the variable."""
        with pytest.raises(ValueError, match="CTRL.*control characters"):
            render_env_file({"CTRL": value}, "systemd")

    @pytest.mark.skipif(
        not GENERATOR.exists(), reason="systemd-environment-d-generator not installed"
    )
    def test_systemd_parser_reads_back_values(self, tmp_path):
        """systemd's env-file parser yields the intended values (values without '$', non-empty).

        environment.d expands $VAR after parsing and drops empty assignments, both unlike
        EnvironmentFile=; those cases are pinned by the golden test above.
        """
        values = {name: value for name, value in NASTY.items() if "$" not in value and value}
        (tmp_path / "environment.d").mkdir()
        (tmp_path / "environment.d" / "50-azauth.conf").write_text(
            render_env_file(values, "systemd"), encoding="utf-8"
        )

        result = subprocess.run(
            [str(GENERATOR)],
            capture_output=True,
            text=True,
            env={"XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            check=True,
        )

        assert "invalid" not in result.stderr, result.stderr
        parsed = {}
        for line in result.stdout.splitlines():
            name, _, raw = line.partition("=")
            parsed[name] = decode_systemd_output(raw)
        assert {name: parsed.get(name) for name in values} == values


class TestPwsh:
    def test_golden(self):
        """pwsh lines are $env:NAME = '...' with every single-quote character doubled, after a BOM."""
        text = render_env_file({"A": "it's ‘x’", "B": "$HOME `n"}, "pwsh")

        assert text == f"\ufeff{HEADER}\n$env:A = 'it''s ‘‘x’’'\n$env:B = '$HOME `n'\n"

    def test_bom_is_written_as_utf8(self, tmp_path):
        """The file starts with the UTF-8 byte-order mark that Windows PowerShell 5.1 needs."""
        assert write(tmp_path, {"A": "é"}, "pwsh").read_bytes().startswith(b"\xef\xbb\xbf#")

    @pytest.mark.skipif(shutil.which("pwsh") is None, reason="PowerShell (pwsh) not installed")
    def test_pwsh_reads_back_every_value(self, tmp_path):
        """PowerShell gets exactly the intended values by dot-sourcing the file."""
        # PowerShell removes a variable assigned '' (documented), so EMPTY is left out here.
        values = {n: v for n, v in {**NASTY, **MULTILINE, **ODD_BREAKS}.items() if v}
        path = write(tmp_path, values, "pwsh")
        script = (
            f". '{path}'; "
            "$names = @(" + ",".join(f"'{n}'" for n in values) + "); "
            "$out = @{}; foreach ($n in $names) { $out[$n] = [Environment]::GetEnvironmentVariable($n) }; "
            "$out | ConvertTo-Json -Compress"
        )

        result = subprocess.run(
            ["pwsh", "-NoProfile", "-NonInteractive", "-Command", script],
            capture_output=True,
            check=True,
        )

        assert json.loads(result.stdout.decode("utf-8")) == values
