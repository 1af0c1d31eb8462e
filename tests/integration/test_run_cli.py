"""`azauth run` as a real subprocess against the emulator: files, exit codes, signals, secrets."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import time

import pytest
from dotenv import dotenv_values

from agent.jwt import unverified_claims
from agent.testing.emulator import Emulator
from tests.support import (
    CLIENT,
    ROOT,
    SC,
    SC2,
    SUBSCRIPTION,
    TENANT,
    azauth,
    azauth_async,
    exists,
    spawn_azauth,
    toml_connection,
    toml_output,
    toml_profile,
    toml_table,
    wait_for,
)

PROFILE = (
    toml_table("[settings]", refresh_margin=300)
    + toml_connection(subscription=SUBSCRIPTION)
    + toml_connection("other", service_connection=SC2)
    + toml_profile("ci", "prod", "other")
    + toml_output("token_file", connection="prod", path="out/arm.token")
    + toml_output("token_file", connection="prod", path="out/arm.json", format="json")
    + toml_output("federated_token_file", connection="prod", path="out/prod.jwt")
    + toml_output(
        "env_file",
        connection="prod",
        path="out/terraform.env",
        preset="terraform",
        variables={"TOKEN_EXPIRES_AT": "expires_at"},
    )
    + toml_output(
        "env_file",
        connection="other",
        path="out/identity.sh",
        dialect="sh",
        preset="azure-identity",
    )
)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    return tmp_path


@pytest.fixture
async def emu(start_emulator):
    return await start_emulator((SC, TENANT, CLIENT), (SC2, TENANT, CLIENT))


def issued_secrets(emu: Emulator) -> list[str]:
    secrets = [emu.system_access_token]
    secrets += [t.token for t in emu.issued]
    return secrets


class TestOnce:
    async def test_run_writes_every_output_and_env_files_read_back(self, workdir, emu):
        code, out, err = await azauth_async("run", "--once", cwd=workdir)

        assert code == 0, err
        assert out == ""  # no pipeline variables in this profile: stdout stays empty
        assert "CONNECTION" in err and "out/arm.token" in err
        assert emu.counts == {"oidc": 2, "token": 1}
        out_dir = workdir / "out"
        token = (out_dir / "arm.token").read_text()
        assert emu.verify_access_token(token)["aud"] == "https://management.azure.com"
        doc = json.loads((out_dir / "arm.json").read_text())
        assert doc["token"] == token
        assert doc["expires_on"] > time.time() + 3000
        assert doc["expires_at"].endswith("Z")
        # dotenv reads back exactly what the terraform preset means.
        values = dotenv_values(out_dir / "terraform.env")
        assert values == {
            "ARM_USE_OIDC": "true",
            "ARM_CLIENT_ID": CLIENT,
            "ARM_TENANT_ID": TENANT,
            "ARM_SUBSCRIPTION_ID": SUBSCRIPTION,
            "ARM_OIDC_TOKEN_FILE_PATH": str(out_dir / "terraform.federated-token"),
            "TOKEN_EXPIRES_AT": doc["expires_at"],
        }
        assert unverified_claims((out_dir / "prod.jwt").read_text())["sub"].startswith("sc://")
        # bash sources the sh dialect and sees the azure-identity variables.
        shown = subprocess.run(
            [
                "bash",
                "-c",
                f'set -a; . "{out_dir / "identity.sh"}"; printf "%s\\n" "$AZURE_CLIENT_ID" "$AZURE_TENANT_ID" "$AZURE_FEDERATED_TOKEN_FILE" "$AZURE_AUTHORITY_HOST"',
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert shown == [CLIENT, TENANT, str(out_dir / "identity.federated-token"), emu.authority]
        assert (out_dir / "identity.federated-token").read_text().count(".") == 2

    async def test_debug_run_never_prints_a_secret(self, workdir, emu):
        code, out, err = await azauth_async("run", "-vv", "--log-format", "json", cwd=workdir)

        assert code == 0, err
        assert '"level": "debug"' in err
        assert emu.issued  # tokens were minted ...
        for secret in issued_secrets(emu):
            assert secret not in out
            assert secret not in err  # ... and none of them reached the output

    async def test_json_logs_are_one_object_per_line(self, workdir, emu):
        code, _, err = await azauth_async("run", "-v", "--log-format", "json", cwd=workdir)

        assert code == 0
        events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert {"token_acquired", "oidc_token_acquired"} <= {e["event"] for e in events}

    async def test_wrong_system_token_is_an_auth_error(self, workdir, emu, monkeypatch):
        monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "wrong-token-value")
        code, out, err = await azauth_async("run", cwd=workdir)

        assert code == 4
        assert out == ""
        assert "401" in err and "SYSTEM_ACCESSTOKEN" in err
        assert "Traceback" not in err
        assert not (workdir / "out").exists()

    async def test_partial_failure_exit_code(self, workdir, emu):
        text = PROFILE.replace(SC2, "99999999-0000-0000-0000-000000000000")
        (workdir / "azauth.toml").write_text(text)
        code, _, err = await azauth_async("run", cwd=workdir)

        assert code == 5
        assert "No service connection found" in err
        assert (workdir / "out/arm.token").exists()
        assert not (workdir / "out/identity.sh").exists()

    async def test_missing_oidc_uri(self, workdir, emu, monkeypatch):
        monkeypatch.delenv("SYSTEM_OIDCREQUESTURI")
        code, _, err = await azauth_async("run", cwd=workdir)

        assert code == 3  # the job environment, like a missing SYSTEM_ACCESSTOKEN
        assert "SYSTEM_OIDCREQUESTURI" in err
        assert "--emulate" in err

    def test_config_error_exit_code(self, tmp_path):
        (tmp_path / "azauth.toml").write_text("[connections.x]\ntenant = 1\n")
        result = azauth("run", cwd=tmp_path)

        assert result.returncode == 3
        assert "azauth.toml" in result.stderr
        assert "Traceback" not in result.stderr

    def test_usage_error_exit_code(self, tmp_path):
        result = azauth("run", "--once", "--watch", cwd=tmp_path)

        assert result.returncode == 2


class TestEmulate:
    def test_the_readme_first_command_works_on_the_example(self, tmp_path):
        shutil.copy(ROOT / "azauth.toml.example", tmp_path / "azauth.toml.example")
        result = azauth("run", "--emulate", "--config", "azauth.toml.example", cwd=tmp_path)

        assert result.returncode == 0, result.stderr
        written = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert written
        for line in result.stdout.splitlines():
            assert line.startswith("##vso[")

    def test_implicit_profile_from_azuresubscription_variables(self, tmp_path):
        env = dict(os.environ)
        env.update(
            AZURESUBSCRIPTION_TENANT_ID=TENANT,
            AZURESUBSCRIPTION_CLIENT_ID=CLIENT,
            AZURESUBSCRIPTION_SERVICE_CONNECTION_ID=SC,
        )
        result = azauth("run", "--emulate", cwd=tmp_path, env=env)

        assert result.returncode == 0, result.stderr
        assert "https://management.azure.com/.default" in result.stderr


class TestWatch:
    async def test_sigterm_stops_cleanly_and_remove_on_exit_deletes(self, workdir, emu):
        proc = await spawn_azauth("run", "--watch", "--remove-on-exit", cwd=workdir)
        target = workdir / "out/arm.token"
        await wait_for(exists(target), what="the token file")
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)

        assert proc.returncode == 0
        assert not target.exists()
        assert not (workdir / "out/prod.jwt").exists()

    async def test_sighup_reloads_the_profile(self, workdir, emu):
        proc = await spawn_azauth("run", "--watch", cwd=workdir)
        try:
            await wait_for(exists(workdir / "out/arm.token"), what="the token file")
            with (workdir / "azauth.toml").open("a") as fh:
                fh.write(
                    '\n[[profiles.ci.outputs]]\nkind = "token_file"\nconnection = "other"\npath = "out/added.token"\n'
                )
            proc.send_signal(signal.SIGHUP)
            await wait_for(exists(workdir / "out/added.token"), what="the added token file")
            assert emu.verify_access_token((workdir / "out/added.token").read_text())
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0

    @pytest.mark.slow
    async def test_outputs_never_hold_an_expired_token_for_over_a_minute(self, workdir, emu):
        """20 s token lifetimes, 70 s of watch mode, every output sampled every 100 ms."""
        emu.oidc_lifetime = 20
        emu.token_lifetime = 20
        proc = await spawn_azauth(
            "run",
            "--watch",
            cwd=workdir,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        out = workdir / "out"
        try:
            await wait_for(exists(out / "identity.sh", out / "terraform.env"), what="the env files")
            samples = 0
            seen_tokens: set[str] = set()
            deadline = time.monotonic() + 70
            while time.monotonic() < deadline:
                now = time.time()
                token = (out / "arm.token").read_text()
                claims = emu.verify_access_token(token)  # signature and exp
                assert claims["exp"] > now
                seen_tokens.add(token)
                assert json.loads((out / "arm.json").read_text())["expires_on"] > now
                for jwt_file in (
                    "prod.jwt",
                    "identity.federated-token",
                    "terraform.federated-token",
                ):
                    assert unverified_claims((out / jwt_file).read_text())["exp"] > now
                assert dotenv_values(out / "terraform.env")["ARM_CLIENT_ID"] == CLIENT
                samples += 1
                await asyncio.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert samples > 500
        assert len(seen_tokens) >= 5  # renewed again and again, not once


class TestCrashSafety:
    async def test_sigkill_mid_write_never_leaves_a_partial_file(self, workdir, emu):
        """Kill the runner at random moments, many times: each output is whole or absent."""
        rng = random.Random(1234)
        emu.latency = 0.0
        completes = 0
        for _ in range(25):
            proc = await spawn_azauth(
                "run",
                cwd=workdir,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            # From before the first write to after the last: a warm run (the profile cache)
            # delivers this profile in well under 0.5 s.
            await asyncio.sleep(rng.uniform(0.05, 0.6))
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            completes += proc.returncode == 0
            out = workdir / "out"
            if not out.exists():
                continue
            for path in out.iterdir():
                if ".azauth-" in path.name:
                    continue  # a temp file the kill left behind; never a target name
                data = path.read_text()
                if path.suffix == ".token":
                    assert emu.verify_access_token(data)
                elif path.suffix == ".json":
                    assert json.loads(data)["token"]
                elif path.suffix in (".jwt",) or path.name.endswith("federated-token"):
                    assert unverified_claims(data)["sub"].startswith("sc://")
                else:
                    assert data.endswith("\n")
                    assert "ARM_" in data or "AZURE_" in data
        assert completes < 25  # some runs really were killed mid-way
