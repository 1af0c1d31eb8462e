"""Watch mode and exec under real faults, in real time: `azauth` subprocesses against the emulator.

Each test is one of the issue's cases, with token lifetimes of a few seconds, and asserts what a
user sees: the contents of the output files over time, the exit code, the request counts.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from agent.jwt import unverified_claims
from agent.testing.emulator import Emulator
from agent.testing.fakes import skewed_clock_environment
from tests.support import (
    AZAUTH,
    CLIENT,
    KV,
    PROD_CI,
    SC,
    TENANT,
    python_program,
    toml_output,
    toml_table,
    wait_for,
)

PROFILE = (
    toml_table("[settings]", log_level="info")
    + PROD_CI
    + toml_output("token_file", connection="prod", path="out/arm.token")
    + toml_output("token_file", connection="prod", scope=KV, path="out/kv.token")
    + toml_output("federated_token_file", connection="prod", path="out/prod.jwt")
)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    return tmp_path


@pytest.fixture
async def emu(start_emulator):
    return await start_emulator((SC, TENANT, CLIENT), oidc_lifetime=4, token_lifetime=4)


async def start(
    workdir: Path, *args: str, prefix: tuple[str, ...] = ()
) -> asyncio.subprocess.Process:
    log = (workdir / "azauth.log").open("wb")
    return await asyncio.create_subprocess_exec(
        *prefix,
        *AZAUTH,
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )


async def stop(proc: asyncio.subprocess.Process, workdir: Path) -> tuple[int, str]:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(proc.wait(), 30)
    return code, (workdir / "azauth.log").read_text()


async def finish(proc: asyncio.subprocess.Process, workdir: Path) -> tuple[int, str]:
    code = await asyncio.wait_for(proc.wait(), 60)
    return code, (workdir / "azauth.log").read_text()


def fresh_access(emu: Emulator, path: Path) -> bool:
    try:
        emu.verify_access_token(path.read_text())
    except (ValueError, OSError):
        return False
    return True


def fresh_jwt(path: Path, *, now: float | None = None) -> bool:
    try:
        exp = unverified_claims(path.read_text()).get("exp", 0)
    except OSError:
        return False
    return exp > (time.time() if now is None else now)


def outage(emu: Emulator) -> None:
    emu.fail_next("oidc", 0, body="drop", count=1_000_000)
    emu.fail_next("token", 0, body="drop", count=1_000_000)


class TestOutages:
    async def test_watch_recovers_within_seconds_after_an_outage_longer_than_the_token_life(
        self, workdir, emu
    ):
        """Cases 1 and 5: refreshing never stops, and recovery does not wait for a long backoff."""
        proc = await start(workdir, "run", "--watch")
        out = workdir / "out"
        try:
            await wait_for(lambda: fresh_access(emu, out / "arm.token"), 15)
            outage(emu)
            await asyncio.sleep(9)  # more than twice the token life
            assert not fresh_access(emu, out / "arm.token")  # the outage was felt
            emu.clear_failures()
            took = await wait_for(
                lambda: (
                    fresh_access(emu, out / "arm.token")
                    and fresh_access(emu, out / "kv.token")
                    and fresh_jwt(out / "prod.jwt")
                ),
                10,
            )
            assert took < 5
            # ... and it keeps refreshing: fresh at every sample for the next 6 s.
            for _ in range(30):
                await asyncio.sleep(0.2)
                assert fresh_access(emu, out / "arm.token")
                assert fresh_jwt(out / "prod.jwt")
        finally:
            code, log = await stop(proc, workdir)
        assert code == 0, log[-3000:]
        assert "token_stale" in log
        assert '"state": "recovered"' in log
        # The summary: after the first delivery, when outputs started failing, when they healed.
        assert log.count("CONNECTION  SCOPE") >= 3

    async def test_exec_keeps_the_childs_federated_token_file_fresh_after_an_outage(
        self, workdir, emu
    ):
        child = python_program("sample_federated_token_file.py")
        proc = await start(workdir, "exec", "--", *child)
        try:
            await wait_for((workdir / "samples").exists, 15)
            outage(emu)
            await asyncio.sleep(9)
            emu.clear_failures()
            healed = time.time()
            await asyncio.sleep(8)
            (workdir / "stop").write_text("")
            code = await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert code == 0, (workdir / "azauth.log").read_text()[-3000:]
        samples = [line.split(" ", 1) for line in (workdir / "samples").read_text().splitlines()]
        late = [(float(t), tok) for t, tok in samples if float(t) > healed + 5]
        assert len(late) > 20
        assert all(unverified_claims(tok)["exp"] > t for t, tok in late)
        expired_during_outage = [
            1
            for t, tok in samples
            if float(t) < healed and unverified_claims(tok)["exp"] <= float(t)
        ]
        assert expired_during_outage  # the child did see the outage, and then it ended


class TestPartialFailures:
    async def test_a_refused_scope_never_starves_its_siblings(self, workdir, emu):
        """Case 2: Key Vault refused from the start; ARM and the OIDC token stay fresh."""
        emu.refused_scopes = {KV}
        proc = await start(workdir, "run", "--watch")
        out = workdir / "out"
        try:
            took = await wait_for(
                lambda: fresh_access(emu, out / "arm.token") and fresh_jwt(out / "prod.jwt"), 15
            )
            assert took < 10
            for _ in range(40):  # 8 s: two token lives, renewed each time
                await asyncio.sleep(0.2)
                assert fresh_access(emu, out / "arm.token")
                assert fresh_jwt(out / "prod.jwt")
            assert not (out / "kv.token").exists()
            refused = [r for r in emu.requests if r.form and r.form.get("scope") == KV]
            assert 1 <= len(refused) <= 2  # permanent: backs off to 30 s, no hammering
        finally:
            code, log = await stop(proc, workdir)
        # Stopped while one output was never delivered: PARTIAL, with the summary.
        assert code == 5, log[-3000:]
        assert "FAILED" in log and "invalid_scope" in log
        assert "refresh_failed_permanently" in log


class TestBadAnswers:
    async def test_tokens_with_no_life_are_errors_not_a_request_storm(self, workdir, emu):
        """Case 3: expires_in 0 and an OIDC exp already past."""
        emu.expires_in = 0
        proc = await start(workdir, "run", "--watch")
        await asyncio.sleep(6)
        tokens = emu.counts["token"]
        emu.expires_in = None
        emu.oidc_exp_offset = -10  # exp before iat: already expired
        emu.reset_counts()
        await asyncio.sleep(6)
        oidc = emu.counts["oidc"]
        code, log = await stop(proc, workdir)
        # At most one attempt every 2 s per token: 2 scopes x 6 s / 2 s, plus the first.
        assert tokens <= 2 * 4 + 2, tokens
        # OIDC: its own item plus each scope's assertion, each at most every 2 s.
        assert oidc <= 3 * 4 + 3, oidc
        assert code == 5
        assert "no usable life" in log
        assert "Traceback" not in log

    @pytest.mark.parametrize(
        ("knob", "value"),
        [
            ("expires_in", "inf"),
            ("expires_in", float("inf")),
            ("expires_in", -5),
            ("refresh_in", float("inf")),
            ("token_body", b"[" * 50_000 + b"]" * 50_000),
        ],
        ids=["string-inf", "Infinity", "negative", "refresh_in-Infinity", "nested-50000"],
    )
    async def test_malformed_numbers_are_an_authentication_error_in_run(
        self, workdir, emu, knob, value
    ):
        """Case 4 (`run`): a clear error and exit 4, never a traceback."""
        setattr(emu, knob, value)
        proc = await start(workdir, "run")
        code, log = await finish(proc, workdir)
        assert code == 4, log[-3000:]
        assert "Traceback" not in log
        assert "Microsoft Entra ID" in log

    async def test_a_malformed_answer_never_ends_watch_mode(self, workdir, emu):
        """Case 4 (`run --watch`): keeps trying, recovers, exits 0 when stopped fresh."""
        emu.expires_in = "Infinity"
        proc = await start(workdir, "run", "--watch")
        out = workdir / "out"
        try:
            await asyncio.sleep(4)
            assert proc.returncode is None  # still running
            assert fresh_jwt(out / "prod.jwt")  # the OIDC token is not affected
            emu.expires_in = None
            await wait_for(
                lambda: (
                    fresh_access(emu, out / "arm.token") and fresh_access(emu, out / "kv.token")
                ),
                6,
            )
        finally:
            code, log = await stop(proc, workdir)
        assert code == 0, log[-3000:]
        assert "Traceback" not in log

    async def test_a_token_expired_on_arrival_never_replaces_a_good_file(self, workdir, emu):
        """Case 6."""
        emu.token_lifetime = 3600
        proc = await start(workdir, "run")
        code, log = await finish(proc, workdir)
        assert code == 0, log
        good = (workdir / "out/arm.token").read_text()
        emu.expires_in = 0
        proc = await start(workdir, "run")
        code, log = await finish(proc, workdir)
        assert code == 4
        assert "no usable life" in log
        assert (workdir / "out/arm.token").read_text() == good


@pytest.mark.skipif(
    skewed_clock_environment("+0") is None,
    reason="libfaketime is not installed (apt-get install faketime)",
)
class TestSkewedClock:
    @pytest.mark.parametrize("offset", ["+10m", "-2m"])
    async def test_a_skewed_agent_clock_changes_nothing(self, workdir, emu, offset, monkeypatch):
        """Case 3 with a real skewed clock: libfaketime moves the agent's clock only.

        Preloaded directly (``LD_PRELOAD``, ``FAKETIME``) rather than through the `faketime`
        wrapper, which does not pass SIGTERM on to its child.
        """
        for name, value in (skewed_clock_environment(offset) or {}).items():
            monkeypatch.setenv(name, value)
        proc = await start(workdir, "run", "--watch")
        monkeypatch.delenv("LD_PRELOAD")
        out = workdir / "out"
        try:
            await wait_for(
                lambda: fresh_jwt(out / "prod.jwt") and fresh_access(emu, out / "arm.token"), 20
            )
            emu.reset_counts()
            for _ in range(40):  # 8 s, two OIDC lives
                await asyncio.sleep(0.2)
                assert fresh_jwt(out / "prod.jwt")  # judged by the real clock
                assert fresh_access(emu, out / "arm.token")
            oidc = emu.counts["oidc"]
        finally:
            code, log = await stop(proc, workdir)
        assert code == 0, log[-3000:]
        # Renewed at half-life (every 2 s) by its own item and by each scope's assertion.
        assert oidc <= 3 * 5, oidc
        assert ("ahead of" if offset.startswith("+") else "behind") in log
        # Absolute times in files keep the server's values: the JWT's exp is Azure DevOps'.
        assert abs(unverified_claims((out / "prod.jwt").read_text())["exp"] - time.time()) < 10
