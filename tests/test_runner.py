"""The runner in-process: concurrent acquisition, delivery, partial failure, watch scheduling."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import sys

import pytest

from agent.config import load_config
from agent.exceptions import ExitCode
from agent.report import render_summary
from agent.runner import Runner, plan_connection
from agent.testing.fakes import FakeClock
from tests.support import (
    CLIENT,
    CLIENT2,
    KV,
    SC,
    SC2,
    SUBSCRIPTION,
    TENANT,
    toml_connection,
    toml_output,
    toml_profile,
)

PROFILE = (
    toml_connection(subscription=SUBSCRIPTION)
    + toml_connection("shared", client=CLIENT2, service_connection=SC2)
    + toml_profile("ci", "prod", "shared")
    + toml_output("token_file", connection="prod", path="out/arm.token")
    + toml_output("token_file", connection="prod", scope=KV, path="out/vault.json", format="json")
    + toml_output("federated_token_file", connection="prod", path="out/prod.jwt")
    + toml_output("env_file", connection="shared", path="out/terraform.env", preset="terraform")
    + toml_output(
        "pipeline_variables",
        connection="shared",
        variables={"SHARED_TOKEN": "access_token", "SHARED_TENANT": "tenant_id"},
    )
)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "azauth.toml").write_text(PROFILE)
    return tmp_path


@pytest.fixture
async def emu(start_emulator):
    return await start_emulator((SC, TENANT, CLIENT), (SC2, TENANT, CLIENT2))


def profile(name: str = "ci", **overrides):
    return load_config(settings_overrides=overrides).profile(name)


class TestPlan:
    def test_scopes_and_oidc_needs_per_connection(self, workdir):
        prof = profile()

        prod = plan_connection(prof, "prod")
        shared = plan_connection(prof, "shared")

        assert prod.scopes == (
            "https://management.azure.com/.default",
            "https://vault.azure.net/.default",
        )
        assert prod.needs_oidc
        assert shared.scopes == ("https://management.azure.com/.default",)  # access_token variable
        assert shared.needs_oidc  # the terraform preset points at a federated token file


class TestRunOnce:
    async def test_every_output_is_written_with_one_oidc_request_per_connection(self, workdir, emu):
        out = io.StringIO()
        async with Runner(profile(), env=dict(os.environ), stdout=out) as runner:
            report = await runner.run_once()

        assert report.exit_code == ExitCode.OK
        assert emu.counts == {"oidc": 2, "token": 3}
        arm = (workdir / "out/arm.token").read_text()
        assert emu.verify_access_token(arm)["aud"] == "https://management.azure.com"
        vault = json.loads((workdir / "out/vault.json").read_text())
        assert emu.verify_access_token(vault["token"])["aud"] == "https://vault.azure.net"
        assert vault["scope"] == "https://vault.azure.net/.default"
        jwt = (workdir / "out/prod.jwt").read_text()
        assert jwt.count(".") == 2
        env_text = (workdir / "out/terraform.env").read_text()
        assert f"ARM_CLIENT_ID={CLIENT2}" in env_text
        assert "ARM_USE_OIDC=true" in env_text
        federated = workdir / "out/terraform.federated-token"
        assert f"ARM_OIDC_TOKEN_FILE_PATH={federated}" in env_text
        assert federated.read_text().count(".") == 2
        lines = out.getvalue().splitlines()
        assert any(
            line.startswith("##vso[task.setvariable variable=SHARED_TOKEN;issecret=true]")
            for line in lines
        )
        assert f"##vso[task.setvariable variable=SHARED_TENANT]{TENANT}" in lines
        assert lines[0].startswith("##vso[task.setsecret]")  # masked before it is set
        for path in (workdir / "out").iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((workdir / "out").stat().st_mode) == 0o700

    async def test_summary_names_scopes_and_outputs(self, workdir, emu):
        async with Runner(profile(), env=dict(os.environ), stdout=io.StringIO()) as runner:
            report = await runner.run_once()

        text = render_summary(report, 0)
        assert "prod" in text
        assert "https://vault.azure.net/.default" in text
        assert "out/vault.json" in text
        assert "(OIDC token)" in text

    async def test_all_failing_is_an_auth_error(self, workdir, emu):
        emu.fail_next("oidc", 404, count=100)
        async with Runner(profile(), env=dict(os.environ), stdout=io.StringIO()) as runner:
            report = await runner.run_once()

        assert report.exit_code == ExitCode.AUTH
        assert not (workdir / "out").exists()

    async def test_one_failing_connection_does_not_stop_the_others(self, workdir, emu):
        bad = (
            load_config()
            .config.connections["shared"]
            .model_copy(update={"service_connection_id": "99999999-0000-0000-0000-000000000000"})
        )
        prof = profile()
        prof.connections["shared"] = bad
        async with Runner(prof, env=dict(os.environ), stdout=io.StringIO()) as runner:
            report = await runner.run_once()

        assert report.exit_code == ExitCode.PARTIAL
        by_name = {c.name: c for c in report.connections}
        assert by_name["prod"].ok
        assert "No service connection found" in str(by_name["shared"].error)
        assert (workdir / "out/arm.token").exists()
        assert not (workdir / "out/terraform.env").exists()

    async def test_fail_fast_stops_at_the_first_failure(self, workdir, emu):
        emu.latency = 0.2
        prof = profile(fail_fast=True)
        prof.connections["shared"] = prof.connections["shared"].model_copy(
            update={"system_access_token_env": "NOT_SET_ANYWHERE"}
        )
        async with Runner(prof, env=dict(os.environ), stdout=io.StringIO()) as runner:
            report = await runner.run_once()

        assert report.exit_code != ExitCode.OK
        assert not (workdir / "out/arm.token").exists()  # prod was cancelled, not delivered

    async def test_missing_system_access_token_is_a_config_error(self, workdir, emu, monkeypatch):
        monkeypatch.delenv("SYSTEM_ACCESSTOKEN")
        async with Runner(profile(), env=dict(os.environ), stdout=io.StringIO()) as runner:
            report = await runner.run_once()

        assert report.exit_code == ExitCode.CONFIG
        assert "SYSTEM_ACCESSTOKEN" in str(report.connections[0].error)
        assert emu.counts == {"oidc": 0, "token": 0}


class TestWatch:
    async def test_failed_refresh_never_empties_an_output(self, workdir, emu):
        clock = FakeClock()
        emu.clock = clock
        stop = asyncio.Event()
        async with Runner(
            profile(), env=dict(os.environ), clock=clock, stdout=io.StringIO()
        ) as runner:
            await runner.run_once()
            before = {p.name: p.read_bytes() for p in (workdir / "out").iterdir()}
            emu.fail_next("oidc", 500, count=10_000)
            emu.fail_next("token", 500, count=10_000)
            task = asyncio.create_task(runner.watch(stop))
            while clock.time() < 1_800_000_000 + 200:  # several failed refresh rounds
                await asyncio.sleep(0.01)
            stop.set()
            await task
            after = {
                p.name: p.read_bytes()
                for p in (workdir / "out").iterdir()
                if ".azauth-" not in p.name
            }

        assert emu.counts["oidc"] > 4
        assert after == before

    # Not traced by coverage (pytest-cov's marker): FakeClock jumps after a real quiet period
    # that the writes must finish within, and the tracer slows them down several times.
    @pytest.mark.no_cover
    async def test_schedule_renews_the_oidc_token_at_half_life_and_access_tokens_before_expiry(
        self, workdir, emu
    ):
        clock = FakeClock()
        clock.quiet_period = 0.05  # file writes (two fsyncs each) must finish before time jumps
        emu.clock = clock
        emu.oidc_lifetime = 300
        emu.token_lifetime = 3600
        stop = asyncio.Event()
        async with Runner(
            profile(), env=dict(os.environ), clock=clock, stdout=io.StringIO()
        ) as runner:
            task = asyncio.create_task(runner.watch(stop))
            start = clock.time()
            while clock.time() < start + 3400:
                await asyncio.sleep(0.005)
            stop.set()
            await task
            reports = runner.reports

        # OIDC tokens are renewed every ~150 s; access tokens only once, 300 s before expiry.
        prod = [
            r.time
            for r in emu.requests
            if r.endpoint == "oidc" and r.query["serviceConnectionId"] == SC
        ]
        gaps = [b - a for a, b in zip(prod, prod[1:], strict=False)]
        assert len(prod) >= 15, gaps
        assert all(140 <= gap <= 200 for gap in gaps), gaps
        arm_requests = [
            r
            for r in emu.requests
            if r.endpoint == "token" and r.form["scope"] == "https://vault.azure.net/.default"
        ]
        assert len(arm_requests) == 2
        assert arm_requests[1].time - arm_requests[0].time == pytest.approx(3300, abs=5)
        assert all(r.ok for r in reports.values())

    async def test_remove_outputs(self, workdir, emu):
        async with Runner(profile(), env=dict(os.environ), stdout=io.StringIO()) as runner:
            await runner.run_once()
            removed = runner.remove_outputs()

        assert sorted(os.path.basename(p) for p in removed) == [
            "arm.token",
            "prod.jwt",
            "terraform.env",
            "terraform.federated-token",
            "vault.json",
        ]
        assert list((workdir / "out").iterdir()) == []


async def test_library_use_never_logs_to_stdout(workdir, emu):
    """Without configure_logging(), the runner's events reach stdlib logging (stderr here)."""
    script = (
        "import asyncio, logging, os\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "from agent.config import load_config\n"
        "from agent.runner import Runner\n"
        "async def main():\n"
        "    async with Runner(load_config().profile('ci'), env=dict(os.environ)) as runner:\n"
        "        report = await runner.run_once()\n"
        "    assert report.exit_code == 0, report\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()

    assert proc.returncode == 0, err.decode()
    # Only the pipeline variables this profile asks for are on stdout.
    assert all(line.startswith("##vso[") for line in out.decode().splitlines())
    assert "token_acquired" in err.decode()
