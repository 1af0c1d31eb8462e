"""Directories someone else controls: the token cache and output directories (like ssh/gpg)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent._dirtrust import UntrustedDirectoryError, open_trusted_directory
from agent.cli.main import main
from agent.exceptions import OutputError
from agent.outputs._atomic import atomic_write
from agent.testing.emulator import Emulator
from tests.support import CLIENT, SC, TENANT, spawn_azauth

OTHER_UID = 65534  # nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def pipeline(connected_emulator: Emulator, monkeypatch, tmp_path) -> Emulator:
    monkeypatch.setenv("AZURESUBSCRIPTION_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURESUBSCRIPTION_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", SC)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return connected_emulator


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A sticky world-writable directory like /tmp (pytest's tmp_path is private)."""
    path = Path(tempfile.mkdtemp(prefix="azauth-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def azauth(capsys, *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


class TestCacheDirectory:
    @needs_root
    async def test_cache_directory_of_another_user_is_an_output_error(
        self, pipeline, capsys, tmp_path, monkeypatch
    ):
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o700)
        os.chown(cache, OTHER_UID, OTHER_UID)
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(cache))

        code, out, err = await azauth(capsys, "token")

        assert code == 6
        assert out == ""
        assert str(cache) in err and "nobody (uid 65534)" in err and "mode 0700" in err
        assert "chown" in err
        assert pipeline.counts["token"] == 0

    async def test_group_writable_cache_directory_is_refused_with_the_fix(
        self, pipeline, capsys, tmp_path, monkeypatch
    ):
        cache = tmp_path / "cache"
        cache.mkdir()
        cache.chmod(0o770)
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(cache))

        code, _, err = await azauth(capsys, "token")

        assert code == 6
        assert "mode 0770" in err and f"chmod go-w {cache}" in err

    async def test_symlinked_cache_directory_needs_the_opt_in(
        self, pipeline, capsys, tmp_path, monkeypatch
    ):
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        (tmp_path / "link").symlink_to(real)
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(tmp_path / "link" / "cache"))

        code, _, err = await azauth(capsys, "token")
        assert code == 6
        assert "symbolic link" in err and "AZAUTH_ALLOW_SYMLINKED_DIRS=1" in err

        monkeypatch.setenv("AZAUTH_ALLOW_SYMLINKED_DIRS", "1")
        code, out, _ = await azauth(capsys, "token")
        assert code == 0
        pipeline.verify_access_token(out.strip())
        assert list((real / "cache").glob("*.token"))

    async def test_entry_renamed_to_another_key_is_ignored(
        self, pipeline, capsys, tmp_path, monkeypatch
    ):
        """The ARM entry copied under the key of another scope does not answer that scope."""
        cache = tmp_path / "cache"
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(cache))
        code, arm, _ = await azauth(capsys, "token")
        assert code == 0
        (arm_entry,) = cache.glob("*.token")
        code, low, _ = await azauth(capsys, "token", "--scope", "api://low-trust-app/.default")
        assert code == 0
        (low_entry,) = set(cache.glob("*.token")) - {arm_entry}
        # The directory's owner swaps the entries' contents.
        low_entry.write_bytes(arm_entry.read_bytes())

        code, again, _ = await azauth(capsys, "token", "--scope", "api://low-trust-app/.default")

        assert code == 0
        assert again.strip() != arm.strip()
        claims = pipeline.verify_access_token(again.strip())
        assert claims["aud"] == "api://low-trust-app"

    async def test_fifo_planted_as_an_entry_does_not_hang(
        self, pipeline, capsys, tmp_path, monkeypatch
    ):
        cache = tmp_path / "cache"
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(cache))
        code, _, _ = await azauth(capsys, "token")
        assert code == 0
        (entry,) = cache.glob("*.token")
        entry.unlink()
        os.mkfifo(entry, 0o600)

        code, out, _ = await asyncio.wait_for(azauth(capsys, "token"), 30)

        assert code == 0
        pipeline.verify_access_token(out.strip())

    async def test_fifo_as_lock_file_does_not_hang(self, pipeline, capsys, tmp_path, monkeypatch):
        cache = tmp_path / "cache"
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(cache))
        code, _, _ = await azauth(capsys, "token")
        (lock,) = cache.glob("*.lock")
        (entry,) = cache.glob("*.token")
        entry.unlink()
        lock.unlink()
        os.mkfifo(lock, 0o600)

        code, out, _ = await asyncio.wait_for(azauth(capsys, "token"), 30)

        assert code == 0
        pipeline.verify_access_token(out.strip())


class TestOutputDirectories:
    @needs_root
    def test_directory_of_another_user_is_refused(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir(mode=0o755)
        os.chown(out, OTHER_UID, OTHER_UID)
        with pytest.raises(OutputError, match=r"owned by nobody \(uid 65534\), mode 0755"):
            atomic_write(out / "env.sh", b"export A=1\n")
        assert not (out / "env.sh").exists()

    def test_other_writable_directory_is_refused(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        out.chmod(0o757)
        with pytest.raises(OutputError, match=r"writable by others.*chmod go-w"):
            atomic_write(out / "env.sh", b"x")

    def test_sticky_shared_directory_only_as_a_parent_of_a_private_one(self, shared_tmp):
        with pytest.raises(OutputError, match="private directory inside it"):
            atomic_write(shared_tmp / "env.sh", b"x")
        atomic_write(shared_tmp / "job" / "env.sh", b"x")
        assert stat.S_IMODE((shared_tmp / "job").stat().st_mode) == 0o700

    @needs_root
    def test_planted_directory_in_a_shared_one_is_refused(self, shared_tmp):
        planted = shared_tmp / "job"
        planted.mkdir(mode=0o700)
        os.chown(planted, OTHER_UID, OTHER_UID)
        with pytest.raises(OutputError, match="another user controls it"):
            atomic_write(planted / "env.sh", b"x")

    def test_symlink_at_a_parent_component_is_refused(self, tmp_path, monkeypatch):
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        (tmp_path / "out").symlink_to(elsewhere)
        with pytest.raises(OutputError, match="symbolic link"):
            atomic_write(tmp_path / "out" / "sub" / "token", b"x")
        assert list(elsewhere.iterdir()) == []
        monkeypatch.setenv("AZAUTH_ALLOW_SYMLINKED_DIRS", "1")
        atomic_write(tmp_path / "out" / "sub" / "token", b"x")
        assert (elsewhere / "sub" / "token").read_bytes() == b"x"

    @pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
    def test_created_directories_are_exactly_0700(self, tmp_path, mask):
        old = os.umask(mask)
        try:
            fd = open_trusted_directory(str(tmp_path / "a" / "b"), create=True)
            os.close(fd)
        finally:
            os.umask(old)
        assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700

    def test_error_names_directory_owner_mode_and_fix(self, tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        out.chmod(0o775)
        with pytest.raises(UntrustedDirectoryError) as caught:
            open_trusted_directory(str(out))
        message = str(caught.value)
        assert str(out) in message and "mode 0775" in message and "uid" in message
        assert "chmod go-w" in message

    async def test_azauth_run_reports_an_untrusted_output_directory(
        self, pipeline, tmp_path, monkeypatch
    ):
        """`azauth run` writing into a group-writable directory exits 6 naming it."""
        out = tmp_path / "work" / "out"
        out.mkdir()
        out.chmod(0o775)
        profile = {
            "connections": {
                "prod": {"tenant_id": TENANT, "client_id": CLIENT, "service_connection_id": SC}
            },
            "profiles": {
                "ci": {
                    "connections": ["prod"],
                    "outputs": [{"kind": "token_file", "path": "out/arm.token"}],
                }
            },
        }
        (tmp_path / "work" / "azauth.yaml").write_text(json.dumps(profile))
        proc = await spawn_azauth("run", "--profile", "ci", cwd=tmp_path / "work")
        _, err = await proc.communicate()
        assert proc.returncode == 6, err.decode()
        assert f"{out}" in err.decode() and "mode 0775" in err.decode()
        assert not (out / "arm.token").exists()


class TestNonRegularFiles:
    async def test_fifo_as_the_profile_file_is_an_error_not_a_hang(self, tmp_path, capsys):
        os.mkfifo(tmp_path / "azauth.toml")
        code, _, err = await asyncio.wait_for(
            azauth(capsys, "validate", "--config", str(tmp_path / "azauth.toml")), 30
        )
        assert code == 3
        assert "not a file" in err or "not a regular file" in err

    def test_read_regular_file_refuses_a_fifo_without_blocking(self, tmp_path):
        from agent._dirtrust import read_regular_file  # noqa: PLC0415

        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(OSError, match="not a regular file"):
            read_regular_file(str(tmp_path / "fifo"))


class TestWithoutDescriptors:
    """The path-based fallback used where dir_fd does not exist (Windows), run here on POSIX."""

    def test_writes_creates_and_refuses_symlinks(self, tmp_path, monkeypatch):
        from agent import _dirtrust  # noqa: PLC0415

        monkeypatch.setattr(_dirtrust, "_DIR_FD", False)
        atomic_write(tmp_path / "new" / "token", b"x")
        assert (tmp_path / "new" / "token").read_bytes() == b"x"
        (tmp_path / "link").symlink_to(tmp_path / "new")
        with pytest.raises(OutputError, match="symbolic link"):
            atomic_write(tmp_path / "link" / "token", b"y")
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(OutputError, match="not a directory"):
            atomic_write(tmp_path / "file" / "token", b"y")
