"""Start-up of the ``azauth`` command (issue 15): what a one-shot process imports, and the pieces
that keep it small — stand-ins for azure-core's classes in the command only, one parser per
invocation, the version constant, the per-loop shared HTTP session of the library."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path

import azure.core.credentials
import azure.core.exceptions
import pytest

import agent
from agent import _http, _trust
from agent._version import __version__
from agent.cli.main import COMMAND_HELP, COMMANDS, build_parser
from agent.testing.emulator import Emulator
from tests.support import (
    ARM,
    CLIENT,
    PROD_CI,
    SC,
    TENANT,
    feed_profile,
    python_program,
    toml_output,
)

REPO = Path(__file__).resolve().parents[1]

# Runs the console-script entry point as `azauth ARGS`, then lists what the process imported.
PROBE = """
import sys
sys.argv = ["azauth", *sys.argv[1:]]
from agent._entry import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print("LOADED=" + ",".join(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""

PROFILE = PROD_CI + toml_output("token_file", connection="prod", scope=ARM, path="out/arm.token")


async def probe(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, set[str], str]:
    """Run the probe as a real process; return its exit code, imported modules and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE,
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    _, err = await asyncio.wait_for(process.communicate(), 120)
    text = err.decode()
    line = next(line for line in text.splitlines() if line.startswith("LOADED="))
    assert process.returncode is not None
    return process.returncode, set(line.removeprefix("LOADED=").split(",")), text


def family(modules: set[str], *roots: str) -> list[str]:
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "azauth.toml").write_text(PROFILE)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AZAUTH_", "AZURE", "SYSTEM_", "SSL_", "REQUESTS_"))
    }
    env["HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(REPO)
    return tmp_path, env


# ------------------------------------------------------------------------------------------------
# What one-shot processes import


async def test_help_lists_the_commands_without_importing_them(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    cwd, env = workspace
    code, modules, _ = await probe(cwd, env, "--help")

    assert code == 0
    assert family(modules, "asyncio", "pydantic", "aiohttp", "azure", "structlog") == []
    assert family(modules, *(f"agent.cli.{name.replace('-', '_')}" for name in COMMANDS)) == []


async def test_validate_of_a_toml_profile_imports_no_yaml_azure_core_or_rich(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    cwd, env = workspace
    code, modules, _ = await probe(cwd, env, "validate")

    assert code == 0
    assert "agent.config.loading" in modules  # it did validate
    assert family(modules, "yaml", "azure", "rich", "aiohttp") == []
    # Only the invoked command's module: not the other eleven.
    assert family(modules, "agent.cli.run", "agent.cli.serve", "agent.cli.token") == []


async def test_run_once_delivers_without_azure_core(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    cwd, env = workspace
    async with Emulator() as emu:
        emu.add_connection(SC, TENANT, CLIENT)
        env.update(emu.pipeline_environment())
        code, modules, err = await probe(cwd, env, "run", "--once", "-q")

        assert code == 0, err
        emu.verify_access_token((cwd / "out" / "arm.token").read_text().strip())
    assert "aiohttp" in modules
    assert family(modules, "azure", "rich", "yaml") == []
    assert family(modules, "structlog") == []  # nothing was logged: logging never installed
    # No feed output: the feed writers (and the XML and http.client modules they bring) stay out.
    assert family(modules, "agent.feeds.writer", "agent.feeds.outputs", "agent.feeds.render") == []
    # No docker_config output: nor the Docker config and ACR exchange modules.
    assert family(modules, "agent.registries.acr_client", "agent.outputs.docker_config") == []


async def test_run_once_with_an_npmrc_output_imports_the_feed_writer_then(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    cwd, env = workspace
    feed = "https://pkgs.dev.azure.com/contoso/_packaging/shared/npm/registry/"
    npmrc = cwd / "user.npmrc"
    npmrc.write_text("save-exact=true\n")
    (cwd / "azauth.toml").write_text(
        feed_profile(feed, toml_output("npmrc", path=str(npmrc)))
        + toml_output("token_file", connection="artifacts", scope=ARM, path="out/arm.token")
    )
    async with Emulator() as emu:
        emu.add_connection(SC, TENANT, CLIENT)
        env.update(emu.pipeline_environment())
        code, modules, err = await probe(cwd, env, "run", "--once", "-q")

        assert code == 0, err
        text = npmrc.read_text()
        assert text.startswith("save-exact=true\n")  # the user's lines are kept
        assert "//pkgs.dev.azure.com/contoso/_packaging/shared/npm/registry/:_authToken=" in text
        token = text.split(":_authToken=")[1].split()[0]
        emu.verify_access_token(token)
    assert "agent.feeds.writer" in modules


async def test_run_once_with_a_docker_config_output_exchanges_at_the_registry(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    cwd, env = workspace
    emu = await Emulator().start(tls=True)
    try:
        emu.add_connection(SC, TENANT, CLIENT)
        registry = emu.url.removeprefix("https://")
        (cwd / "azauth.toml").write_text(
            PROD_CI
            + f'[profiles.ci.registries."{registry}"]\nconnection = "prod"\n'
            + toml_output("docker_config", path="docker/config.json", mode="auths")
        )
        env.update(emu.pipeline_environment(), SSL_CERT_FILE=str(emu.ca_file))
        code, modules, err = await probe(cwd, env, "run", "--once", "-q")

        assert code == 0, err
        config = json.loads((cwd / "docker" / "config.json").read_text())
        emu.registry.key.verify(config["auths"][registry]["identitytoken"])
        assert emu.registry.counts["exchange"] == 1
    finally:
        await emu.close()
    assert "agent.registries.acr_client" in modules


@pytest.mark.parametrize("fmt", ["console", "json", "azure-pipelines"])
async def test_run_once_quiet_still_logs_a_failure_in_each_format(
    workspace: tuple[Path, dict[str, str]], fmt: str
) -> None:
    """The first event at the level installs the logging the quiet run never needed before."""
    cwd, env = workspace
    async with Emulator() as emu:  # the connection is not registered: Entra refuses it
        env.update(emu.pipeline_environment())
        code, modules, err = await probe(cwd, env, "run", "--once", "-q", "--log-format", fmt)

    assert code == 4, err
    assert "structlog" in modules
    lines = [line for line in err.splitlines() if "connection_failed" in line]
    assert len(lines) == 1, err
    if fmt == "json":
        event = json.loads(lines[0])
        assert (event["event"], event["level"], event["logger"]) == (
            "connection_failed",
            "error",
            "agent.runner",
        )
    elif fmt == "azure-pipelines":
        assert lines[0].startswith("##[error]azauth: connection_failed connection=prod ")
    else:
        assert re.fullmatch(r"\S+Z \[error +\] connection_failed +\[agent\.runner\] .*", lines[0])


async def test_an_authentication_failure_in_the_command_is_still_one_line(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    """The stand-in base class carries the message: exit 4, the service's words, no traceback."""
    cwd, env = workspace
    async with Emulator() as emu:  # the connection is not registered: Entra refuses it
        env.update(emu.pipeline_environment())
        code, modules, err = await probe(cwd, env, "run", "--once", "-q")

    assert code == 4, err
    assert "Traceback" not in err
    assert f"No service connection found with identifier {SC}" in err  # the stand-in's message
    assert family(modules, "azure") == []


# ------------------------------------------------------------------------------------------------
# Library users keep azure-core's classes


def test_library_classes_are_azure_cores() -> None:
    assert issubclass(agent.AuthenticationError, azure.core.exceptions.ClientAuthenticationError)
    from agent.exchange import Token, TokenInfo  # noqa: PLC0415

    assert issubclass(Token, azure.core.credentials.AccessToken)
    assert issubclass(TokenInfo, azure.core.credentials.AccessTokenInfo)
    err = agent.EntraError("refused", status_code=400, error="invalid_client")
    with pytest.raises(azure.core.exceptions.ClientAuthenticationError) as caught:
        raise err
    assert caught.value.message == "refused"


def test_the_command_gets_stand_ins_only_when_azure_core_is_not_loaded() -> None:
    """A marked process imports no azure-core; the stand-in has the library class's fields."""
    code = (
        "import sys\n"
        "from agent._standalone import mark_command\n"
        "mark_command()\n"
        "from agent.exceptions import EntraError\n"
        "from agent.exchange import Token\n"
        "err = EntraError('refused', status_code=400, error='invalid_client')\n"
        "print(sorted(m for m in sys.modules if m.startswith('azure')), err.message,\n"
        "      err.status_code, err.error, str(err), Token('t', 5).expires_on)\n"
    )
    out = _run_python(code)
    assert out == "[] refused 400 invalid_client refused 5"


def _run_python(code: str) -> str:
    import subprocess  # noqa: PLC0415

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=60,
    )
    return result.stdout.strip()


# ------------------------------------------------------------------------------------------------
# The parser, the version


def test_the_help_table_is_what_each_command_registers() -> None:
    full = build_parser()
    actions = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    (sub,) = actions
    registered = {choice.dest: choice.help for choice in sub._choices_actions}
    assert registered == COMMAND_HELP
    assert list(registered) == list(COMMANDS)


def test_the_listing_parser_prints_the_same_help() -> None:
    assert build_parser(listing=True).format_help() == build_parser().format_help()


@pytest.mark.parametrize("command", COMMANDS)
def test_one_command_parser_parses_like_the_full_one(command: str) -> None:
    argv = [command, "--help"]
    with pytest.raises(SystemExit):
        build_parser(command).parse_args(argv)
    one = build_parser(command)._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    full = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    assert one.format_help() == full.format_help()


def test_version_constant_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__


def test_user_agent_carries_the_version() -> None:
    from agent.credential import _user_agent  # noqa: PLC0415

    assert _user_agent() == f"azauth/{__version__}"


# ------------------------------------------------------------------------------------------------
# Credentials of one process share the loop's HTTP session


async def test_credentials_without_a_session_share_one_and_the_last_close_closes_it() -> None:
    async with Emulator() as emu:
        for index in range(3):
            emu.add_connection(f"{SC[:-1]}{index}", TENANT, CLIENT)
        credentials = [
            agent.AzurePipelinesCredential(
                tenant_id=TENANT,
                client_id=CLIENT,
                service_connection_id=f"{SC[:-1]}{index}",
                system_access_token=emu.system_access_token,
                authority=emu.authority,
                oidc_request_uri=emu.oidc_request_uri,
            )
            for index in range(3)
        ]
        tokens = await asyncio.gather(*(c.get_token(ARM) for c in credentials))
        for token in tokens:
            emu.verify_access_token(token.token)
        loop = asyncio.get_running_loop()
        shared = _http._SHARED[id(loop)]
        assert shared.users == 3
        session = shared.session

        await credentials[0].close()  # the others keep working on the same session
        assert not session.closed
        token = await credentials[1].get_token("https://vault.azure.net/.default")
        emu.verify_access_token(token.token)

        await credentials[1].close()
        await credentials[2].close()
        assert session.closed
        assert id(loop) not in _http._SHARED

        # A credential made afterwards gets a new session.
        later = agent.AzurePipelinesCredential(
            tenant_id=TENANT,
            client_id=CLIENT,
            service_connection_id=f"{SC[:-1]}0",
            system_access_token=emu.system_access_token,
            authority=emu.authority,
            oidc_request_uri=emu.oidc_request_uri,
        )
        async with later:
            emu.verify_access_token((await later.get_token(ARM)).token)
        assert id(loop) not in _http._SHARED


def test_each_event_loop_gets_its_own_session() -> None:
    async def once() -> None:
        async with Emulator() as emu:
            emu.add_connection(SC, TENANT, CLIENT)
            async with agent.AzurePipelinesCredential(
                tenant_id=TENANT,
                client_id=CLIENT,
                service_connection_id=SC,
                system_access_token=emu.system_access_token,
                authority=emu.authority,
                oidc_request_uri=emu.oidc_request_uri,
            ) as credential:
                emu.verify_access_token((await credential.get_token(ARM)).token)

    asyncio.run(once())
    asyncio.run(once())  # the first loop's session is closed and forgotten
    assert _http._SHARED == {}


def test_the_system_trust_store_is_aiohttps_default_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import aiohttp.connector  # noqa: PLC0415

    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert _trust.system_context() is aiohttp.connector._SSL_CONTEXT_VERIFIED  # type: ignore[attr-defined]
    # Trust overridden in the process: a context of its own, never aiohttp's.
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    assert _trust.system_context() is not aiohttp.connector._SSL_CONTEXT_VERIFIED  # type: ignore[attr-defined]


@pytest.mark.parametrize("bundle", [True, False], ids=["SSL_CERT_FILE", "system store"])
def test_the_command_loads_the_trust_store_once(tmp_path: Path, bundle: bool) -> None:
    """aiohttp's import-time contexts load nothing in the command; azauth's own loads it once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_", "REQUESTS_CA"))}
    env["PYTHONPATH"] = str(REPO)
    if bundle:
        env["SSL_CERT_FILE"] = ssl.get_default_verify_paths().openssl_cafile

    def measure(mode: str) -> dict[str, int]:
        result = subprocess.run(
            python_program("trust_store_loads.py", mode),
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(result.stdout)

    command, library, prewarm = measure("command"), measure("library"), measure("prewarm")

    assert command["loads"] == 1
    assert command["aiohttp_default"] == 0  # built empty: trusts nothing, so never lets through
    assert command["ours"] == library["ours"] > 0  # the same trust for what azauth sends
    assert command["restored"] and library["restored"]  # ssl.SSLContext is left as it was
    assert library["aiohttp_default"] > 0  # programs using the library keep aiohttp's defaults
    assert library["loads"] >= 2
    # `azauth run` loads it on a thread during aiohttp's import: once, and the same certificates.
    assert prewarm["loads"] == prewarm["loads_off_main"] == 1
    assert prewarm["ours_certs"] == command["ours_certs"] == library["ours_certs"]
    assert prewarm["aiohttp_default"] == 0
    assert prewarm["restored"]


def test_the_deferred_trust_store_is_empty_only_in_the_importing_thread() -> None:
    """aiohttp's import loads no store; a prewarm thread loading meanwhile gets the real one."""
    import threading  # noqa: PLC0415

    from agent import _standalone  # noqa: PLC0415

    load = _standalone._load_nothing_here(ssl.SSLContext.load_default_certs, threading.get_ident())
    here = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    load(here)
    there = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    thread = threading.Thread(target=load, args=(there,))
    thread.start()
    thread.join()

    assert here.cert_store_stats()["x509_ca"] == 0
    assert there.cert_store_stats() == ssl.create_default_context().cert_store_stats()


async def test_run_once_over_https_in_the_command(
    workspace: tuple[Path, dict[str, str]],
) -> None:
    """With aiohttp's defaults empty, the command's requests still verify through its own CA."""
    cwd, env = workspace
    emu = await Emulator().start(tls=True)
    try:
        emu.add_connection(SC, TENANT, CLIENT)
        env.update(emu.pipeline_environment(), SSL_CERT_FILE=str(emu.ca_file))
        code, _, err = await probe(cwd, env, "run", "--once", "-q")

        assert code == 0, err
        emu.verify_access_token((cwd / "out" / "arm.token").read_text().strip())
        # Without the emulator's CA the same run is refused: nothing trusts everything.
        (cwd / "out" / "arm.token").unlink()
        del env["SSL_CERT_FILE"]
        code, _, err = await probe(cwd, env, "run", "--once", "-q")
        assert code != 0
        assert not (cwd / "out" / "arm.token").exists()
    finally:
        await emu.close()
