"""atomic_write / remove_output: modes, symlink refusal, atomicity under SIGKILL, failure safety."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.exceptions import OutputError
from agent.outputs._atomic import (
    STALE_TEMP_SECONDS,
    StaleTempSweeps,
    atomic_write,
    remove_output,
    temp_name_pattern,
)
from agent.testing import FakeClock

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX-only file semantics")


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def leftovers(directory: Path, keep: str) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name != keep)


def run_in_child(body: Callable[[], str]) -> str:
    """Run ``body`` in a forked child process and return the text it produced.

    Used where the test needs a process state the test runner must not take on itself
    (another user id, a file-size limit). The child never returns into pytest.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        status = 0
        try:
            result = body()
        except BaseException as exc:  # report anything, never unwind into pytest
            result = f"child crashed: {type(exc).__name__}: {exc}"
            status = 1
        os.write(write_end, result.encode())
        os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode()


class TestModes:
    @pytest.mark.parametrize("mask", [0o000, 0o077, 0o022])
    def test_file_is_0600_whatever_the_umask(self, tmp_path, mask):
        """The file is created 0600 regardless of the umask."""
        target = tmp_path / "token"

        with umask(mask):
            atomic_write(target, b"data")

        assert mode_of(target) == 0o600
        assert target.read_bytes() == b"data"

    @pytest.mark.parametrize("mask", [0o000, 0o077, 0o277])
    def test_explicit_mode_is_applied_exactly(self, tmp_path, mask):
        """The mode argument is applied exactly: the umask neither widens nor narrows it."""
        target = tmp_path / "shared"

        with umask(mask):
            atomic_write(target, b"x", mode=0o640)

        assert mode_of(target) == 0o640

    @pytest.mark.parametrize("mask", [0o000, 0o077, 0o277])
    def test_created_parents_are_0700(self, tmp_path, mask):
        """Every directory atomic_write creates is 0700 exactly, under any umask."""
        target = tmp_path / "a" / "b" / "c" / "token"

        with umask(mask):
            atomic_write(target, b"x")

        for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
            assert mode_of(directory) == 0o700
        assert target.read_bytes() == b"x"

    def test_existing_directories_keep_their_mode(self, tmp_path):
        """Directories that already exist are not chmod-ed."""
        existing = tmp_path / "shared"
        existing.mkdir()
        existing.chmod(0o755)

        with umask(0o077):
            atomic_write(existing / "new" / "token", b"x")

        assert mode_of(existing) == 0o755
        assert mode_of(existing / "new") == 0o700

    def test_existing_file_mode_is_tightened(self, tmp_path):
        """Replacing a world-readable file leaves a 0600 file."""
        target = tmp_path / "token"
        target.write_bytes(b"old")
        target.chmod(0o644)

        atomic_write(target, b"new")

        assert mode_of(target) == 0o600


class TestReplace:
    def test_replaces_content_with_a_new_inode(self, tmp_path):
        """The content is replaced by rename: the target becomes a new file, never rewritten in place."""
        target = tmp_path / "token"
        atomic_write(target, b"first content")
        first_inode = os.stat(target).st_ino
        reader = target.open("rb")  # a reader holding the old file keeps seeing the old content

        atomic_write(target, b"second")

        assert target.read_bytes() == b"second"
        assert os.stat(target).st_ino != first_inode
        assert reader.read() == b"first content"
        reader.close()

    def test_no_temporary_file_is_left_after_success(self, tmp_path):
        """A successful write leaves only the target in the directory."""
        target = tmp_path / "token"

        for number in range(5):
            atomic_write(target, f"content {number}".encode())

        assert os.listdir(tmp_path) == ["token"]

    def test_large_content_is_written_completely(self, tmp_path):
        """Content larger than a pipe/page buffer is written whole."""
        data = os.urandom(3 * 1024 * 1024 + 7)
        target = tmp_path / "big"

        atomic_write(target, data)

        assert target.read_bytes() == data

    def test_relative_path_is_relative_to_the_working_directory(self, tmp_path, monkeypatch):
        """A relative path lands in the working directory."""
        monkeypatch.chdir(tmp_path)

        atomic_write("rel/token", b"x")

        assert (tmp_path / "rel" / "token").read_bytes() == b"x"


class TestRefusals:
    def test_symlink_to_another_file_is_refused(self, tmp_path):
        """A symlink at the target is refused and the file it points to is left untouched."""
        victim = tmp_path / "victim"
        victim.write_bytes(b"precious")
        link = tmp_path / "token"
        link.symlink_to(victim)

        with pytest.raises(OutputError) as caught:
            atomic_write(link, b"SECRET-TOKEN-DATA")

        assert victim.read_bytes() == b"precious"
        assert link.is_symlink()
        assert os.readlink(link) == str(victim)
        assert caught.value.path == str(link)
        assert "symbolic link" in str(caught.value)
        assert "SECRET-TOKEN-DATA" not in str(caught.value)
        assert leftovers(tmp_path, "token") == ["victim"]

    def test_dangling_symlink_is_refused(self, tmp_path):
        """A dangling symlink is refused and nothing is created where it points."""
        link = tmp_path / "token"
        link.symlink_to(tmp_path / "elsewhere")

        with pytest.raises(OutputError, match="symbolic link"):
            atomic_write(link, b"x")

        assert not (tmp_path / "elsewhere").exists()
        assert link.is_symlink()

    def test_directory_at_path_is_refused(self, tmp_path):
        """A directory at the target path is refused, and left as it was."""
        target = tmp_path / "token"
        target.mkdir()
        (target / "inside").write_bytes(b"keep")

        with pytest.raises(OutputError, match="directory") as caught:
            atomic_write(target, b"x")

        assert caught.value.path == str(target)
        assert (target / "inside").read_bytes() == b"keep"

    def test_fifo_at_path_is_refused(self, tmp_path):
        """A special file (a FIFO) at the target is refused without opening it."""
        target = tmp_path / "token"
        os.mkfifo(target)

        with pytest.raises(OutputError, match="not a regular file"):
            atomic_write(target, b"x")

        assert stat.S_ISFIFO(os.lstat(target).st_mode)

    def test_parent_that_is_a_file_is_refused(self, tmp_path):
        """A regular file where a parent directory should be is an OutputError."""
        (tmp_path / "notadir").write_bytes(b"")

        with pytest.raises(OutputError, match="not a directory"):
            atomic_write(tmp_path / "notadir" / "token", b"x")


@pytest.fixture
def world_traversable_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path lives under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="azauth-atomic-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class TestFailures:
    def test_unwritable_directory_keeps_old_content(self, world_traversable_dir):
        """When the directory is not writable, OutputError names the path and the old file stays."""
        target = world_traversable_dir / "token"
        target.write_bytes(b"old content")
        target.chmod(0o644)

        def attempt() -> str:
            if os.geteuid() == 0:
                # root ignores directory permissions; drop to 'nobody' in this child only.
                os.setgid(65534)
                os.setuid(65534)
            else:
                world_traversable_dir.chmod(0o555)
            try:
                atomic_write(target, b"NEW-SECRET-CONTENT")
            except OutputError as exc:
                return f"OutputError|{exc.path}|{exc}"
            return "no error"

        outcome = run_in_child(attempt)
        world_traversable_dir.chmod(0o755)

        kind, path, message = outcome.split("|", 2)
        assert kind == "OutputError"
        assert path == str(target)
        assert "NEW-SECRET-CONTENT" not in message
        assert target.read_bytes() == b"old content"
        assert leftovers(world_traversable_dir, "token") == []

    def test_failure_mid_write_removes_the_temporary_file(self, tmp_path):
        """A write that fails halfway (file-size limit) leaves the old content and no temp file."""
        target = tmp_path / "token"
        atomic_write(target, b"old content")

        def attempt() -> str:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
            try:
                atomic_write(target, b"N" * 100_000)
            except OutputError as exc:
                return f"OutputError|{exc}"
            return "no error"

        outcome = run_in_child(attempt)

        assert outcome.startswith("OutputError|")
        assert "NNNN" not in outcome
        assert target.read_bytes() == b"old content"
        assert leftovers(tmp_path, "token") == []


def content_for(number: int) -> bytes:
    """A large, self-identifying content: a 12-digit header then 256 KiB of one byte value."""
    return f"{number:012d}\n".encode() + bytes([number % 251]) * (256 * 1024)


class TestCrashSafety:
    ITERATIONS = 200

    def test_sigkill_mid_write_never_leaves_a_partial_target(self, tmp_path):
        """Killing a writer at random moments leaves the target absent or complete, 200 times over.

        Each iteration forks a process that rewrites the target in a loop with distinct
        contents, SIGKILLs it after a random delay of up to 15 ms, then checks the target.
        Temporary files may survive a SIGKILL but always under the documented temp name.
        """
        seed = random.randrange(2**32)
        rng = random.Random(seed)
        target = tmp_path / "token"
        pattern = temp_name_pattern("token")
        completed_states = 0

        for iteration in range(self.ITERATIONS):
            pid = os.fork()
            if pid == 0:  # child: write until killed, never return into pytest
                try:
                    number = iteration * 1_000_000
                    while True:
                        atomic_write(target, content_for(number))
                        number += 1
                finally:
                    os._exit(1)
            time.sleep(rng.uniform(0, 0.015))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

            if target.exists():
                data = target.read_bytes()
                number = int(data[:12])
                assert data == content_for(number), (
                    f"partial target (seed {seed}, iteration {iteration})"
                )
                assert mode_of(target) == 0o600
                completed_states += 1
            strays = [name for name in leftovers(tmp_path, "token") if not pattern.fullmatch(name)]
            assert strays == [], f"unexpected files {strays} (seed {seed})"

        assert completed_states > 0, "no writer ever completed a write; the test proved nothing"

        # Leftover temporary files are cleaned by the next write once they are stale.
        old = time.time() - STALE_TEMP_SECONDS - 5
        for name in leftovers(tmp_path, "token"):
            os.utime(tmp_path / name, (old, old))
        atomic_write(target, b"final")
        assert os.listdir(tmp_path) == ["token"]
        assert target.read_bytes() == b"final"


def stale_leftover(directory: Path, target: str, *, number: int = 0) -> Path:
    """A temporary file of ``target`` as a killed writer leaves it, already stale."""
    path = directory / f".{target}.azauth-{number:016x}.tmp"
    path.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_SECONDS - 5
    os.utime(path, (old, old))
    return path


class TestStaleTemps:
    def test_stale_temps_of_every_target_in_the_directory_are_removed(self, tmp_path):
        """One sweep cleans the directory: stale temps of any target go; fresh ones and
        look-alikes stay."""
        old = time.time() - STALE_TEMP_SECONDS - 5
        stale = tmp_path / ".token.azauth-0123456789abcdef.tmp"
        fresh = tmp_path / ".token.azauth-fedcba9876543210.tmp"
        other_target = tmp_path / ".other.azauth-0123456789abcdef.tmp"
        look_alike = tmp_path / ".token.azauth-notours.tmp"
        not_hidden = tmp_path / "token.azauth-0123456789abcdef.tmp"
        for path in (stale, fresh, other_target, look_alike, not_hidden):
            path.write_bytes(b"partial")
        for path in (stale, other_target, look_alike, not_hidden):
            os.utime(path, (old, old))

        atomic_write(tmp_path / "token", b"x", sweeps=StaleTempSweeps())

        assert leftovers(tmp_path, "token") == sorted(
            p.name for p in (fresh, look_alike, not_hidden)
        )

    def test_a_directory_is_swept_at_most_once_per_interval(self, tmp_path):
        """Writes within the interval do not sweep again: a stale leftover waits for the next."""
        clock = FakeClock()
        sweeps = StaleTempSweeps(interval=60.0, monotonic=clock.monotonic)
        atomic_write(tmp_path / "a", b"1", sweeps=sweeps)  # the first write sweeps
        leftover = stale_leftover(tmp_path, "a")
        clock.advance(59.0)

        for name in ("a", "b", "c"):
            atomic_write(tmp_path / name, b"2", sweeps=sweeps)

        assert leftover.exists()
        clock.advance(1.0)
        atomic_write(tmp_path / "b", b"3", sweeps=sweeps)
        assert not leftover.exists()

    def test_a_long_watch_cleans_leftovers_that_appear_later(self, tmp_path):
        """Hours of renewals on a FakeClock: each leftover is gone within one interval."""
        clock = FakeClock()
        sweeps = StaleTempSweeps(interval=60.0, monotonic=clock.monotonic)
        for hour in range(8):
            atomic_write(tmp_path / "token", f"{hour}".encode(), sweeps=sweeps)
            leftover = stale_leftover(tmp_path, "token", number=hour)
            for _ in range(12):  # renewals every 5 minutes
                clock.advance(300.0)
                atomic_write(tmp_path / "token", f"{hour}".encode(), sweeps=sweeps)
            assert not leftover.exists(), f"hour {hour}"

        assert os.listdir(tmp_path) == ["token"]

    def test_each_directory_has_its_own_schedule(self, tmp_path):
        """A sweep of one directory does not stand in for another's."""
        clock = FakeClock()
        sweeps = StaleTempSweeps(interval=60.0, monotonic=clock.monotonic)
        first, second = tmp_path / "one", tmp_path / "two"
        first.mkdir(mode=0o700)
        second.mkdir(mode=0o700)
        atomic_write(first / "token", b"x", sweeps=sweeps)
        leftover = stale_leftover(second, "token")

        atomic_write(second / "token", b"x", sweeps=sweeps)

        assert not leftover.exists()

    def test_temp_name_pattern_matches_the_documented_form(self):
        """The documented temp name form is what the pattern accepts."""
        pattern = temp_name_pattern("a.b")

        assert pattern.fullmatch(".a.b.azauth-0123456789abcdef.tmp")
        assert not pattern.fullmatch(".aXb.azauth-0123456789abcdef.tmp")
        assert not pattern.fullmatch("a.b")


class TestRemoveOutput:
    def test_removes_a_regular_file(self, tmp_path):
        """A file written by atomic_write is removed and True is returned."""
        target = tmp_path / "token"
        atomic_write(target, b"x")

        assert remove_output(target) is True
        assert not target.exists()

    def test_missing_file_returns_false(self, tmp_path):
        """Removing a file that does not exist is not an error."""
        assert remove_output(tmp_path / "absent") is False

    def test_symlink_is_not_followed_nor_removed(self, tmp_path):
        """A symlink at the path is refused; neither it nor its target is removed."""
        victim = tmp_path / "victim"
        victim.write_bytes(b"precious")
        link = tmp_path / "token"
        link.symlink_to(victim)

        with pytest.raises(OutputError, match="symbolic link"):
            remove_output(link)

        assert link.is_symlink()
        assert victim.read_bytes() == b"precious"

    def test_directory_is_refused(self, tmp_path):
        """A directory at the path is refused and kept."""
        (tmp_path / "token").mkdir()

        with pytest.raises(OutputError, match="directory"):
            remove_output(tmp_path / "token")

        assert (tmp_path / "token").is_dir()

    def test_stale_temps_are_removed_too(self, tmp_path):
        """Removing an output also cleans its stale temporary files."""
        target = tmp_path / "token"
        atomic_write(target, b"x")
        stale = tmp_path / ".token.azauth-0123456789abcdef.tmp"
        stale.write_bytes(b"partial")
        old = time.time() - STALE_TEMP_SECONDS - 5
        os.utime(stale, (old, old))

        remove_output(target)

        assert os.listdir(tmp_path) == []
