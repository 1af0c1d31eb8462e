"""`azauth exec` as a real subprocess against the emulator: environment, files, signals, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import sys
import time
from pathlib import Path

import pytest

from agent.config import load_config
from agent.exceptions import UsageError
from agent.jwt import unverified_claims
from agent.supervisor import (
    CONFLICTING_VARIABLES,
    NESTING_VARIABLE,
    build_child_env,
    check_not_nested,
    choose_connection,
    exec_profile,
    exit_status,
)
from tests.support import (
    AZAUTH,
    CLIENT,
    CLIENT2,
    SC,
    SC2,
    SUBSCRIPTION,
    TENANT,
    python_program,
    spawn_azauth,
    toml_connection,
    wait_for,
)

PROFILE = f"""
default_profile = "ci"

{toml_connection("prod")}subscription_id = "{SUBSCRIPTION}"

{toml_connection("other", client=CLIENT2, service_connection=SC2)}
[profiles.ci]
connections = ["prod"]

[[profiles.ci.outputs]]
kind = "token_file"
path = "out/arm.token"

[profiles.both]
connections = ["prod", "other"]
"""


@pytest.fixture
def workdir(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "azauth.toml").write_text(PROFILE)
    return work


@pytest.fixture
def agent_temp(tmp_path, monkeypatch):
    """AGENT_TEMPDIRECTORY: where azauth exec makes its private directory."""
    directory = tmp_path / "agent-temp"
    directory.mkdir()
    monkeypatch.setenv("AGENT_TEMPDIRECTORY", str(directory))
    return directory


@pytest.fixture
async def emu(start_emulator, agent_temp):
    return await start_emulator((SC, TENANT, CLIENT), (SC2, TENANT, CLIENT2))


@pytest.fixture
async def tls_emu(start_emulator, monkeypatch, agent_temp):
    emulator = await start_emulator((SC, TENANT, CLIENT), (SC2, TENANT, CLIENT2), tls=True)
    # azure-identity accepts only https authorities; both azauth and the child trust the CA.
    monkeypatch.setenv("SSL_CERT_FILE", emulator.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_file)
    return emulator


async def azauth_exec(
    *args: str, cwd: Path, stdin: bytes | None = None, timeout: float = 60, env=None
) -> tuple[int, str, str]:
    """Run `azauth exec ARGS` without blocking the loop (the emulator lives in this process)."""
    proc = await spawn_azauth(
        "exec",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def python(*code_and_args: str) -> list[str]:
    return ["--", sys.executable, "-c", *code_and_args]


def run_program(name: str, *args: str) -> list[str]:
    """``-- python tests/programs/NAME ARGS``: the command for azauth exec."""
    return ["--", *python_program(name, *args)]


async def wait_for_file(path: Path, proc: asyncio.subprocess.Process, seconds: float = 30) -> None:
    def written() -> bool:
        assert proc.returncode is None, "azauth exited early"
        return path.exists()

    await wait_for(written, seconds, interval=0.02, what=f"{path} to appear")


class TestTheCommandsEnvironment:
    async def test_presets_point_at_a_valid_private_federated_token_file(
        self, workdir, emu, agent_temp
    ):
        """The command sees both presets' variables and reads a real Azure DevOps OIDC token."""
        names = [
            "ARM_USE_OIDC",
            "ARM_CLIENT_ID",
            "ARM_TENANT_ID",
            "ARM_SUBSCRIPTION_ID",
            "ARM_OIDC_TOKEN_FILE_PATH",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST",
            "SYSTEM_ACCESSTOKEN",
            "AZAUTH_PROFILE",
            "AZAUTH_CONFIG",
            NESTING_VARIABLE,
        ]
        code, out, err = await azauth_exec(
            "--preset",
            "terraform",
            "--preset",
            "azure-identity",
            *run_program("show_command_environment.py", *names),
            cwd=workdir,
        )

        assert code == 0, err
        seen = json.loads(out)
        path = seen["_path"]
        assert Path(path).parent.parent == agent_temp  # the private directory, not the workdir
        assert Path(path).name == "prod.federated-token"
        assert seen["ARM_OIDC_TOKEN_FILE_PATH"] == seen["AZURE_FEDERATED_TOKEN_FILE"] == path
        assert (seen["ARM_USE_OIDC"], seen["ARM_CLIENT_ID"], seen["ARM_TENANT_ID"]) == (
            "true",
            CLIENT,
            TENANT,
        )
        assert seen["ARM_SUBSCRIPTION_ID"] == SUBSCRIPTION
        assert (seen["AZURE_CLIENT_ID"], seen["AZURE_TENANT_ID"]) == (CLIENT, TENANT)
        assert seen["AZURE_AUTHORITY_HOST"] == emu.authority
        claims = unverified_claims(seen["_token"])
        assert claims["sub"].startswith("sc://")
        assert claims["aud"] == "api://AzureADTokenExchange"
        assert claims["exp"] > time.time()
        assert (seen["_file_mode"], seen["_dir_mode"]) == (0o600, 0o700)
        # The command gets its credential from the file, not from the job's token...
        assert seen["SYSTEM_ACCESSTOKEN"] is None
        # ... and azauth commands it runs use the same profile; a nested exec is refused.
        assert seen["AZAUTH_PROFILE"] == seen[NESTING_VARIABLE] == "ci"
        assert seen["AZAUTH_CONFIG"] == str(workdir / "azauth.toml")
        assert list(agent_temp.iterdir()) == []  # removed afterwards
        assert emu.verify_access_token((workdir / "out/arm.token").read_text())  # outputs too

    async def test_default_preset_is_azure_identity(self, workdir, emu):
        """Without --preset the command gets the AZURE_* variables and no ARM_* ones."""
        code, out, err = await azauth_exec(
            *run_program("show_command_environment.py", "AZURE_CLIENT_ID", "ARM_CLIENT_ID"),
            cwd=workdir,
        )

        assert code == 0, err
        seen = json.loads(out)
        assert (seen["AZURE_CLIENT_ID"], seen["ARM_CLIENT_ID"]) == (CLIENT, None)

    async def test_no_preset_and_no_outputs(self, workdir, emu, agent_temp):
        """--no-preset sets no credential variable; --no-outputs writes nothing outside."""
        code, out, err = await azauth_exec(
            "--no-preset",
            "--no-outputs",
            *run_program("show_command_environment.py", "AZURE_CLIENT_ID", NESTING_VARIABLE),
            cwd=workdir,
        )

        assert code == 0, err
        assert json.loads(out) == {"AZURE_CLIENT_ID": None, NESTING_VARIABLE: "ci"}
        assert not (workdir / "out").exists()

    async def test_only_the_federated_token_is_fetched_without_outputs(self, workdir, emu):
        """With --no-outputs the profile's token_file is skipped: no Entra call at all."""
        code, _, err = await azauth_exec("--no-outputs", *python("pass"), cwd=workdir)

        assert code == 0, err
        assert emu.counts == {"oidc": 1, "token": 0}
        assert not (workdir / "out").exists()

    async def test_azure_identity_in_the_command_gets_a_token(self, workdir, tls_emu):
        """DefaultAzureCredential inside the command authenticates through the file."""
        code, out, err = await azauth_exec(
            "--no-outputs", *run_program("default_credential_arm_token.py"), cwd=workdir, timeout=90
        )

        assert code == 0, err
        claims = tls_emu.verify_access_token(out.strip(), audience="https://management.azure.com")
        assert claims["appid"] == CLIENT
        assert tls_emu.counts == {"oidc": 1, "token": 1}  # the Entra call was the child's

    async def test_clear_env_removes_competing_credentials(self, workdir, emu, monkeypatch):
        """--clear-env drops ambient secrets and MSI endpoints; other variables stay."""
        ambient = {
            "AZURE_CLIENT_SECRET": "s3cret-value",
            "ARM_USE_MSI": "true",
            "IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi",
            "ARM_CLIENT_SECRET": "x",
            "AZAUTH_TEST_UNRELATED": "kept",
        }
        for name, value in ambient.items():
            monkeypatch.setenv(name, value)
        names = list(ambient)

        code, out, _ = await azauth_exec(
            *run_program("show_command_environment.py", *names), cwd=workdir
        )
        assert code == 0
        # the default preset (azure-identity) owns AZURE_CLIENT_SECRET; the rest stays
        expected = ambient | {"AZURE_CLIENT_SECRET": None}
        assert {k: v for k, v in json.loads(out).items() if not k.startswith("_")} == expected

        code, out, _ = await azauth_exec(
            "--clear-env", *run_program("show_command_environment.py", *names), cwd=workdir
        )
        assert code == 0
        seen = {k: v for k, v in json.loads(out).items() if not k.startswith("_")}
        assert seen == dict.fromkeys(names[:-1]) | {"AZAUTH_TEST_UNRELATED": "kept"}

    async def test_keep_system_token(self, workdir, emu):
        """--keep-system-token passes SYSTEM_ACCESSTOKEN through (removed by default)."""
        code, out, _ = await azauth_exec(
            "--keep-system-token",
            *run_program("show_command_environment.py", "SYSTEM_ACCESSTOKEN"),
            cwd=workdir,
        )

        assert code == 0
        assert json.loads(out)["SYSTEM_ACCESSTOKEN"] == emu.system_access_token

    async def test_stdin_stdout_and_stderr_pass_through(self, workdir, emu):
        """The command reads azauth's stdin and writes to azauth's stdout and stderr."""
        script = "import sys; data = sys.stdin.read(); print(data.upper(), end=''); print('E', file=sys.stderr)"
        code, out, err = await azauth_exec(*python(script), cwd=workdir, stdin=b"hello\nworld\n")

        assert code == 0
        assert out == "HELLO\nWORLD\n"
        assert err.endswith("E\n")

    async def test_profile_and_connection_selection(self, workdir, emu, monkeypatch):
        """--profile beats AZAUTH_PROFILE; a two-connection profile needs --connection."""
        monkeypatch.setenv("AZAUTH_PROFILE", "ci")
        code, _, err = await azauth_exec("--profile", "both", *python("pass"), cwd=workdir)
        assert code == 2
        assert "--connection" in err
        assert "prod, other" in err

        code, out, err = await azauth_exec(
            "--profile",
            "both",
            "--connection",
            "other",
            *run_program("show_command_environment.py", "AZURE_CLIENT_ID", "AZAUTH_PROFILE"),
            cwd=workdir,
        )
        assert code == 0, err
        seen = json.loads(out)
        assert (seen["AZURE_CLIENT_ID"], seen["AZAUTH_PROFILE"]) == (CLIENT2, "both")
        assert Path(seen["_path"]).name == "other.federated-token"


class TestExitStatus:
    @pytest.mark.parametrize("status", [0, 3, 42])
    async def test_exit_code_passthrough(self, workdir, emu, agent_temp, status):
        """azauth exits with the command's exit status and removes its directory."""
        code, _, err = await azauth_exec(*python(f"import sys; sys.exit({status})"), cwd=workdir)

        assert code == status, err
        assert list(agent_temp.iterdir()) == []

    async def test_death_by_signal_is_128_plus_n(self, workdir, emu, agent_temp):
        """A command killed by SIGKILL makes azauth exit 137, like a shell."""
        code, _, _ = await azauth_exec(
            *python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), cwd=workdir
        )

        assert code == 128 + signal.SIGKILL
        assert list(agent_temp.iterdir()) == []

    async def test_command_not_found_is_127(self, workdir, emu, agent_temp):
        code, _, err = await azauth_exec("--", "azauth-no-such-command", cwd=workdir)

        assert code == 127
        assert "azauth-no-such-command: command not found" in err
        assert list(agent_temp.iterdir()) == []

    async def test_command_not_executable_is_126(self, workdir, emu, agent_temp):
        script = workdir / "not-executable.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        code, _, err = await azauth_exec("--", str(script), cwd=workdir)

        assert code == 126
        assert "cannot execute" in err
        assert list(agent_temp.iterdir()) == []

    async def test_failed_delivery_does_not_start_the_command(
        self, workdir, emu, agent_temp, monkeypatch
    ):
        """A token that cannot be delivered: exit 4, the command never runs, nothing left."""
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "wrong-token-value")
        marker = workdir / "ran"
        code, _, err = await azauth_exec(*python(f"open({str(marker)!r}, 'w')"), cwd=workdir)

        assert code == 4
        assert "the command was not started" in err
        assert not marker.exists()
        assert list(agent_temp.iterdir()) == []

    async def test_nesting_is_refused(self, workdir, emu):
        """azauth exec inside azauth exec is a usage error, unless --allow-nested."""
        inner = [*AZAUTH, "exec", "--", sys.executable, "-c", "pass"]
        code, _, err = await azauth_exec("--keep-system-token", "--", *inner, cwd=workdir)

        assert code == 2
        assert "already inside `azauth exec` (profile 'ci'" in err

        inner.insert(4, "--allow-nested")
        code, _, err = await azauth_exec("--keep-system-token", "--", *inner, cwd=workdir)
        assert code == 0, err

    async def test_no_command_is_a_usage_error(self, workdir, emu):
        code, _, err = await azauth_exec(cwd=workdir)

        assert code == 2
        assert "no command given" in err


class TestSignals:
    @pytest.mark.parametrize("name", ["SIGTERM", "SIGINT", "SIGHUP"])
    async def test_signal_is_forwarded_and_the_exit_status_is_the_commands(
        self, workdir, emu, agent_temp, name
    ):
        """A signal to azauth reaches the command; it exits 0 after trapping it, so does azauth."""
        marker, ready = workdir / "marker", workdir / "ready"
        proc = await spawn_azauth(
            "exec",
            *run_program("trap_signal.py", str(marker), str(ready), name),
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # no controlling terminal: nobody else delivers the signal
        )
        await wait_for_file(ready, proc)
        proc.send_signal(getattr(signal, name))
        _, err = await asyncio.wait_for(proc.communicate(), 30)

        assert proc.returncode == 0, err.decode()
        assert marker.read_text() == name
        assert list(agent_temp.iterdir()) == []

    async def test_signal_before_the_command_starts(self, workdir, emu, agent_temp):
        """SIGTERM during acquisition: no command, 128+15, the private directory removed."""
        emu.latency = 20.0
        marker = workdir / "ran"
        proc = await spawn_azauth(
            "exec",
            *python(f"open({str(marker)!r}, 'w')"),
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        def made() -> bool:  # the directory exists once signals are handled
            assert proc.returncode is None
            return bool(list(agent_temp.iterdir()))

        await wait_for(made, 30, interval=0.02, what="the private directory")
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)

        assert proc.returncode == 128 + signal.SIGTERM
        assert "SIGTERM before the command started" in err.decode()
        assert not marker.exists()
        assert list(agent_temp.iterdir()) == []

    async def test_ctrl_c_at_a_terminal_reaches_the_command_once(self, workdir, emu):
        """^C in a terminal signals azauth and the command together; azauth adds no second one.

        (A second interrupt means "exit immediately" to Terraform.) Python merges signals that
        arrive before its handler runs, so the command counts deliveries with the wakeup fd,
        where the C-level handler writes one byte each. The kernel may still merge two that
        arrive together, so ^C is pressed three times, 0.4 s apart: expect exactly 3.
        """
        counter, ready = workdir / "count", workdir / "ready"
        loop = asyncio.get_running_loop()
        output = bytearray()
        master, slave = pty.openpty()
        try:
            # The pty becomes the controlling terminal of a new session, then azauth runs in it.
            proc = await asyncio.create_subprocess_exec(
                *python_program("controlling_terminal.py", *AZAUTH, "exec"),
                *run_program("count_interrupts.py", str(ready), str(counter)),
                cwd=workdir,
                stdin=slave,
                stdout=slave,
                stderr=slave,
            )
            os.close(slave)
            slave = -1

            def drain() -> None:
                try:
                    output.extend(os.read(master, 4096))
                except OSError:
                    loop.remove_reader(master)

            loop.add_reader(master, drain)
            try:
                await wait_for_file(ready, proc)
                for _ in range(3):
                    os.write(master, b"\x03")  # the terminal's interrupt character
                    await asyncio.sleep(0.4)
                await asyncio.wait_for(proc.wait(), 30)
            finally:
                loop.remove_reader(master)
        finally:
            if slave != -1:
                os.close(slave)
            os.close(master)

        assert counter.read_text() == "3", output.decode(errors="replace")
        assert proc.returncode == 0


class TestFreshness:
    @pytest.mark.slow
    async def test_the_file_is_kept_fresh_while_the_command_runs(self, workdir, emu):
        """6 s OIDC tokens, a 12 s command reading the file every 50 ms: never expired, renewed."""
        emu.oidc_lifetime = 6
        code, out, err = await azauth_exec(
            "--no-outputs", *run_program("watch_federated_token_file.py", "12"), cwd=workdir
        )

        assert code == 0, err
        result = json.loads(out)
        assert result["expired"] == 0
        assert result["reads"] > 50
        assert result["distinct"] >= 3  # renewed every ~3 s, not once


class TestPureParts:
    def _profile(self, tmp_path, name="ci"):
        (tmp_path / "azauth.toml").write_text(PROFILE)
        return load_config(tmp_path / "azauth.toml", env={}).profile(name)

    def test_exit_status(self):
        assert [exit_status(c) for c in (0, 1, 255, -2, -9, -15)] == [0, 1, 255, 130, 137, 143]

    def test_check_not_nested(self):
        check_not_nested({})
        check_not_nested({NESTING_VARIABLE: "ci"}, allow_nested=True)
        with pytest.raises(UsageError, match="allow_nested=True"):
            check_not_nested({NESTING_VARIABLE: "ci"})

    def test_choose_connection(self, tmp_path):
        assert choose_connection(self._profile(tmp_path), None) == "prod"
        both = self._profile(tmp_path, "both")
        assert choose_connection(both, "other") == "other"
        # The library names no flag; `azauth exec` adds --connection (test above).
        with pytest.raises(UsageError, match="has 2 connections .*: name the one to use"):
            choose_connection(both, None)
        with pytest.raises(UsageError, match="no such connection"):
            choose_connection(both, "nope")

    def test_exec_profile_adds_the_file_and_drops_unused_connections(self, tmp_path):
        both = self._profile(tmp_path, "both")
        delivered = exec_profile(both, connection="other", token_file="/t/other.jwt")

        assert list(delivered.connections) == ["other"]
        assert [(o.kind, o.path) for o in delivered.outputs] == [
            ("federated_token_file", "/t/other.jwt")
        ]
        ci = self._profile(tmp_path)
        assert [o.kind for o in exec_profile(ci, connection="prod", token_file="/t/p").outputs] == [
            "token_file",
            "federated_token_file",
        ]
        assert (
            exec_profile(ci, connection=None, token_file=None, outputs=False).connections
            == ci.connections
        )

    def test_build_child_env_order(self, tmp_path):
        """Token variables removed; --clear-env list removed; presets set; providers win."""
        base = {"SYSTEM_ACCESSTOKEN": "t", "PATH": "/bin", "ARM_USE_MSI": "true", "X": "1"}
        env = build_child_env(
            base,
            profile=self._profile(tmp_path),
            variables={"X": "2", "Y": "3"},
            clear_env=True,
            config_file="/c.toml",
            extra={"Y": "4"},
        )

        assert env == {
            "PATH": "/bin",
            "X": "2",
            "Y": "4",
            "AZAUTH_PROFILE": "ci",
            "AZAUTH_CONFIG": "/c.toml",
            NESTING_VARIABLE: "ci",
        }
        assert "ARM_USE_MSI" in CONFLICTING_VARIABLES
