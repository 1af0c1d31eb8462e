"""The on-disk token cache: location, keys, freshness, private atomic files, sweeping, locking."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from agent.config import load_config
from agent.config.discovery import find_config_file as config_find_config_file
from agent.credential_helpers.cache import (
    MAX_MARGIN,
    SWEEP_AGE,
    CacheEntry,
    ConfigIdentity,
    TokenCache,
    TokenRequest,
    cache_dir,
    decode_entry,
    encode_entry,
    entry_key,
    find_config_file,
    identify_config,
    is_fresh,
    is_usable,
    refresh_margin,
    selector_for,
)
from agent.credential_helpers.protocols import TokenDetails
from tests.support import CLIENT, SC, TENANT

NOW = 1_800_000_000.0
SECRET = "s3cret-system-access-token-value-0123456789"
ACCESS = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def details(**changes: object) -> TokenDetails:
    values: dict[str, object] = {
        "access_token": ACCESS,
        "token_type": "Bearer",
        "expires_on": int(NOW) + 3599,
        "tenant": TENANT,
        "scopes": ("https://management.azure.com/.default",),
        "client_id": CLIENT,
        "subscription": None,
        "connection": "default",
        "profile": "default",
    }
    values.update(changes)
    return TokenDetails(**values)  # type: ignore[arg-type]


def entry(
    lifetime: float = 3599, remaining: float = 3599, refresh_on: int | None = None
) -> CacheEntry:
    expires_on = int(NOW + remaining)
    return CacheEntry(details(expires_on=expires_on), expires_on - lifetime, refresh_on)


@pytest.fixture
def home(empty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and home, so discovery finds only what a test writes."""
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return empty_home.parent / "home"


class TestCacheDir:
    def test_azauth_cache_dir_wins(self) -> None:
        """AZAUTH_CACHE_DIR is used as it is, before XDG_CACHE_HOME and the home directory."""
        env = {"AZAUTH_CACHE_DIR": "/x/cache", "XDG_CACHE_HOME": "/y", "HOME": "/h"}

        assert cache_dir(env) == "/x/cache"

    def test_xdg_cache_home(self) -> None:
        """Without AZAUTH_CACHE_DIR, the cache is $XDG_CACHE_HOME/azauth."""
        assert cache_dir({"XDG_CACHE_HOME": "/y", "HOME": "/h"}) == "/y/azauth"

    def test_home(self) -> None:
        """Otherwise ~/.cache/azauth."""
        assert cache_dir({"HOME": "/h"}) == "/h/.cache/azauth"


class TestDiscovery:
    @pytest.mark.parametrize(
        "files",
        [
            [],
            ["work/azauth.toml"],
            ["work/azauth.yaml", "work/azauth.yml"],
            ["work/azauth.yml"],
            ["home/.config/azauth/azauth.yaml", "work/azauth.yml"],
            ["home/.config/azauth/azauth.toml", "home/.config/azauth/azauth.yaml"],
            ["work/azauth.toml/"],  # a directory is not a profile file
        ],
    )
    def test_same_file_as_the_config_loader(
        self, home: Path, monkeypatch: pytest.MonkeyPatch, files: list[str]
    ) -> None:
        """The stdlib search finds the file agent.config.discovery finds, in the same order."""
        root = home.parent
        for name in files:
            path = root / name
            if name.endswith("/"):
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("version = 1\n")
        env = dict(os.environ)

        ours = find_config_file(None, env, os.getcwd())
        theirs = config_find_config_file(None, env)

        assert ours == (os.path.abspath(theirs) if theirs is not None else None)

    def test_xdg_config_home(self, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """$XDG_CONFIG_HOME/azauth replaces ~/.config/azauth."""
        xdg = home / "xdg"
        (xdg / "azauth").mkdir(parents=True)
        (xdg / "azauth" / "azauth.yml").write_text("version: 1\n")
        (home / ".config" / "azauth").mkdir(parents=True)
        (home / ".config" / "azauth" / "azauth.toml").write_text("version = 1\n")
        monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
        env = dict(os.environ)

        assert find_config_file(None, env, os.getcwd()) == str(xdg / "azauth" / "azauth.yml")
        assert config_find_config_file(None, env) == xdg / "azauth" / "azauth.yml"

    def test_explicit_beats_azauth_config_beats_search(self, home: Path) -> None:
        """--config > AZAUTH_CONFIG > ./azauth.toml; relative names resolve in the cwd."""
        work = Path.cwd()
        for name in ("azauth.toml", "a.yaml", "b.toml.example"):
            (work / name).write_text("")
        env = {"HOME": str(home), "AZAUTH_CONFIG": "a.yaml"}

        assert find_config_file("b.toml.example", env, str(work)) == str(work / "b.toml.example")
        assert find_config_file(None, env, str(work)) == str(work / "a.yaml")
        assert find_config_file(None, {"HOME": str(home)}, str(work)) == str(work / "azauth.toml")

    @pytest.mark.parametrize("name", ["missing.toml", "azauth.json", "."])
    def test_explicit_must_be_a_profile_file(self, home: Path, name: str) -> None:
        """A named file that is missing, a directory or of another type is not guessed around."""
        (Path.cwd() / "azauth.json").write_text("{}")
        (Path.cwd() / "azauth.toml").write_text("")

        with pytest.raises(FileNotFoundError):
            find_config_file(name, {"HOME": str(home)}, os.getcwd())


class TestIdentifyConfig:
    def test_file_digest_is_sha256_of_its_bytes(self, home: Path) -> None:
        """The digest is the one load_config reports, and changes with the content."""
        path = Path.cwd() / "azauth.toml"
        path.write_text(
            f'[connections.c]\ntenant_id = "{TENANT}"\nclient_id = "{CLIENT}"\n'
            f'service_connection_id = "{SC}"\n[profiles.p]\nconnections = ["c"]\n'
        )
        first = identify_config(None, dict(os.environ), os.getcwd())
        path.write_text(path.read_text() + "# changed\n")
        second = identify_config(None, dict(os.environ), os.getcwd())

        assert first.path == second.path == str(path)
        assert first.digest != second.digest
        assert second.digest == load_config().digest

    def test_implicit_configuration(self, home: Path) -> None:
        """Without a file, the AZURESUBSCRIPTION_* values are hashed; any change shows."""
        env = {
            "HOME": str(home),
            "AZURESUBSCRIPTION_TENANT_ID": TENANT,
            "AZURESUBSCRIPTION_CLIENT_ID": CLIENT,
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": SC,
        }
        first = identify_config(None, env, os.getcwd())
        second = identify_config(
            None, {**env, "AZURESUBSCRIPTION_SUBSCRIPTION_ID": "sub"}, os.getcwd()
        )

        assert first.path is None
        assert first.digest != second.digest

    def test_no_configuration_at_all(self, home: Path) -> None:
        """No file and no AZURESUBSCRIPTION_* connection: nothing to key on."""
        with pytest.raises(LookupError):
            identify_config(None, {"HOME": str(home)}, os.getcwd())


class TestKeys:
    BASE_ENV = {
        "SYSTEM_OIDCREQUESTURI": "https://dev.azure.com/o/p/_apis/oidctoken",
        "PATH": "/bin",
    }
    IDENTITY = ConfigIdentity("/w/azauth.toml", "ab" * 32)

    def selector(self, request: TokenRequest | None = None, **env: str) -> str:
        return selector_for(request or TokenRequest(), self.IDENTITY, {**self.BASE_ENV, **env})

    @pytest.mark.parametrize(
        "request_",
        [
            TokenRequest(profile="p"),
            TokenRequest(connection="c"),
            TokenRequest(scopes=("https://vault.azure.net/.default",)),
            TokenRequest(tenant="contoso.onmicrosoft.com"),
        ],
        ids=["profile", "connection", "scope", "tenant"],
    )
    def test_every_request_input_changes_the_selector(self, request_: TokenRequest) -> None:
        """--profile, --connection, --scope and --tenant are part of the key."""
        assert self.selector(request_) != self.selector()

    def test_how_the_file_was_named_does_not_matter(self) -> None:
        """--config only finds the file: the file's path and bytes are what the key holds."""
        assert self.selector(TokenRequest(config="azauth.toml")) == self.selector()

    @pytest.mark.parametrize(
        "env",
        [
            {"SYSTEM_OIDCREQUESTURI": "https://dev.azure.com/o/p/_apis/other"},
            {"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us"},
            {"AZURE_IDENTITY_DISABLE_MULTITENANTAUTH": "1"},
            {"AZAUTH_PROFILE": "p"},
            {"AZAUTH_CONNECTIONS__C__SCOPE": "https://x/.default"},
        ],
    )
    def test_relevant_variables_change_the_selector(self, env: dict[str, str]) -> None:
        """The OIDC URI, the authority, and every AZAUTH_* override are part of the key."""
        assert self.selector(**env) != self.selector()

    def test_irrelevant_variables_do_not(self) -> None:
        """The cache location and unrelated variables leave the key alone."""
        assert self.selector(AZAUTH_CACHE_DIR="/elsewhere", TERM="xterm") == self.selector()

    def test_configuration_changes_the_selector(self) -> None:
        """Another file, or the same file with other bytes, is another key."""
        env = self.BASE_ENV
        base = selector_for(TokenRequest(), self.IDENTITY, env)

        assert selector_for(TokenRequest(), ConfigIdentity("/w/b.toml", "ab" * 32), env) != base
        assert (
            selector_for(TokenRequest(), ConfigIdentity("/w/azauth.toml", "cd" * 32), env) != base
        )
        assert selector_for(TokenRequest(), ConfigIdentity(None, "ab" * 32), env) != base

    def test_scope_order_and_repetition_do_not_matter(self) -> None:
        """One token for a scope set: the same set is the same key."""
        a = TokenRequest(scopes=("https://a/.default", "https://b/.default"))
        b = TokenRequest(scopes=("https://b/.default", "https://a/.default", "https://b/.default"))

        assert self.selector(a) == self.selector(b)

    def test_entry_key_follows_the_system_access_token(self) -> None:
        """A new job (a new System.AccessToken, or another variable) is a new key."""
        selector = self.selector()
        key = entry_key(selector, "SYSTEM_ACCESSTOKEN", SECRET)

        assert len(key) == 64
        assert set(key) <= set("0123456789abcdef")
        assert entry_key(selector, "SYSTEM_ACCESSTOKEN", SECRET) == key
        assert entry_key(selector, "SYSTEM_ACCESSTOKEN", SECRET + "x") != key
        assert entry_key(selector, "OTHER_TOKEN", SECRET) != key
        assert (
            entry_key(self.selector(TokenRequest(profile="x")), "SYSTEM_ACCESSTOKEN", SECRET) != key
        )


class TestFreshness:
    def test_margin_is_five_minutes_or_half_the_lifetime(self) -> None:
        """Long tokens refresh 5 minutes before expiry, short ones at half their life."""
        assert refresh_margin(3599) == MAX_MARGIN == 300
        assert refresh_margin(400) == 200
        assert refresh_margin(60) == 30

    @pytest.mark.parametrize(
        ("lifetime", "remaining", "fresh"),
        [
            (3599, 3599, True),
            (3599, 301, True),
            (3599, 299, False),
            (120, 61, True),
            (120, 59, False),
        ],
    )
    def test_is_fresh(self, lifetime: float, remaining: float, fresh: bool) -> None:
        """An entry is served only while it has its margin left."""
        assert is_fresh(entry(lifetime, remaining), NOW) is fresh

    def test_refresh_hint(self) -> None:
        """Entra's refresh_in hint ends freshness early."""
        assert not is_fresh(entry(refresh_on=int(NOW) - 1), NOW)
        assert is_fresh(entry(refresh_on=int(NOW) + 10), NOW)

    def test_usable_after_a_failed_refresh(self) -> None:
        """A stale entry is still usable while a minute is left."""
        assert is_usable(entry(remaining=100), NOW)
        assert not is_usable(entry(remaining=59), NOW)


class TestEncoding:
    def test_round_trip(self) -> None:
        """What is encoded decodes to the same entry."""
        original = CacheEntry(details(subscription="sub", scopes=("a", "b")), NOW, int(NOW) + 9)

        assert decode_entry(encode_entry(original)) == original

    @pytest.mark.parametrize(
        "data",
        [
            b"",
            b"not json",
            b"[]",
            json.dumps({"format": 0}).encode(),
            json.dumps({**json.loads(encode_entry(entry())), "expires_on": "soon"}).encode(),
            json.dumps({**json.loads(encode_entry(entry())), "access_token": ""}).encode(),
            json.dumps({**json.loads(encode_entry(entry())), "scopes": "a"}).encode(),
            json.dumps(
                {k: v for k, v in json.loads(encode_entry(entry())).items() if k != "tenant"}
            ).encode(),
        ],
        ids=[
            "empty",
            "garbage",
            "list",
            "old format",
            "bad expiry",
            "no token",
            "bad scopes",
            "missing",
        ],
    )
    def test_anything_else_is_a_miss(self, data: bytes) -> None:
        """Malformed or foreign content decodes to None instead of raising."""
        assert decode_entry(data) is None

    def test_reprs_hide_the_token(self) -> None:
        """Neither record shows the access token."""
        record = entry()

        assert ACCESS not in repr(record)
        assert ACCESS not in repr(record.details)


class TestTokenCache:
    KEY = "a" * 64
    SELECTOR = "b" * 64

    def test_store_and_load(self, tmp_path: Path) -> None:
        """A stored entry loads back; the directories are created 0700 and the files are 0600."""
        directory = tmp_path / "deep" / "cache"
        cache = TokenCache(str(directory))
        record = entry()

        cache.store(self.KEY, self.SELECTOR, "SYSTEM_ACCESSTOKEN", record)

        assert cache.load(self.KEY) == record
        assert cache.read_variable(self.SELECTOR) == "SYSTEM_ACCESSTOKEN"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700
        assert sorted(p.name for p in directory.iterdir()) == [
            f"{self.KEY}.token",
            f"{self.SELECTOR}.var",
        ]
        for path in directory.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_missing_entry(self, tmp_path: Path) -> None:
        """A key never stored, or a cache directory that does not exist, is a miss."""
        assert TokenCache(str(tmp_path / "none")).load(self.KEY) is None
        assert TokenCache(str(tmp_path / "none")).read_variable(self.SELECTOR) is None

    def test_untrusted_files_are_misses(self, tmp_path: Path) -> None:
        """A file others can read, a symbolic link, or another user's file is never served."""
        cache = TokenCache(str(tmp_path))
        cache.store(self.KEY, self.SELECTOR, "SYSTEM_ACCESSTOKEN", entry())
        path = Path(cache.token_path(self.KEY))

        path.chmod(0o644)
        assert cache.load(self.KEY) is None
        path.chmod(0o600)
        assert cache.load(self.KEY) is not None

        real = tmp_path / "elsewhere.token"
        path.rename(real)
        path.symlink_to(real)
        assert cache.load(self.KEY) is None
        path.unlink()
        real.rename(path)

        if os.geteuid() == 0:
            os.chown(path, 4242, -1)
            assert cache.load(self.KEY) is None

    def test_bad_variable_record_is_a_miss(self, tmp_path: Path) -> None:
        """A .var file that does not hold a variable name is ignored."""
        cache = TokenCache(str(tmp_path))
        path = Path(cache.variable_path(self.SELECTOR))
        path.write_text("$(rm -rf /)\n")
        path.chmod(0o600)

        assert cache.read_variable(self.SELECTOR) is None

    def test_keys_are_hex(self, tmp_path: Path) -> None:
        """A key that is not a hash cannot name a file (no path tricks)."""
        with pytest.raises(ValueError, match="hex"):
            TokenCache(str(tmp_path)).token_path("../../etc/passwd")

    def test_remove(self, tmp_path: Path) -> None:
        """remove deletes the entry and says whether there was one."""
        cache = TokenCache(str(tmp_path))
        cache.store(self.KEY, self.SELECTOR, "SYSTEM_ACCESSTOKEN", entry())

        assert cache.remove(self.KEY) is True
        assert cache.load(self.KEY) is None
        assert cache.remove(self.KEY) is False

    def test_sweep(self, tmp_path: Path) -> None:
        """Expired entries and long-unused lock/.var files go; everything else stays."""
        cache = TokenCache(str(tmp_path))
        expired, fresh = "1" * 64, "2" * 64
        cache.store(expired, "3" * 64, "SYSTEM_ACCESSTOKEN", entry(remaining=-1))
        cache.store(fresh, "3" * 64, "SYSTEM_ACCESSTOKEN", entry())
        old_lock, new_lock = Path(cache.lock_path("4" * 64)), Path(cache.lock_path("5" * 64))
        for path in (old_lock, new_lock):
            path.touch(mode=0o600)
        os.utime(old_lock, (NOW - SWEEP_AGE - 1, NOW - SWEEP_AGE - 1))
        os.utime(new_lock, (NOW, NOW))
        os.utime(cache.variable_path("3" * 64), (NOW, NOW))
        stranger = tmp_path / "notes.txt"
        stranger.write_text("mine")

        removed = cache.sweep(NOW)

        assert removed == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [f"{fresh}.token", f"{'3' * 64}.var", new_lock.name, "notes.txt"]
        )


class TestLock:
    KEY = "c" * 64

    def test_lock_file_and_directory_are_private(self, tmp_path: Path) -> None:
        """Locking creates the cache directory 0700 and the lock file 0600."""
        cache = TokenCache(str(tmp_path / "cache"))

        with cache.lock(self.KEY) as held:
            assert held is True

        assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
        assert stat.S_IMODE(Path(cache.lock_path(self.KEY)).stat().st_mode) == 0o600

    def test_second_holder_waits_then_gives_up(self, tmp_path: Path) -> None:
        """While one holder has the lock, another waits up to its timeout, then goes on unlocked."""
        cache = TokenCache(str(tmp_path))
        clock = [0.0]
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            clock[0] += seconds

        with cache.lock(self.KEY) as first:
            contender = cache.lock(self.KEY, timeout=1.0, sleep=sleep, monotonic=lambda: clock[0])
            with contender as second:
                assert first is True
                assert second is False
                assert contender.timed_out

        assert clock[0] >= 1.0
        assert max(waits) <= 0.05
        with cache.lock(self.KEY, timeout=0) as again:
            assert again is True

    def test_unusable_directory(self, tmp_path: Path) -> None:
        """A cache path that cannot be a directory yields an unheld lock with the error."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        lock = TokenCache(str(blocker / "cache")).lock(self.KEY)

        with lock as held:
            assert held is False
            assert isinstance(lock.error, OSError)
