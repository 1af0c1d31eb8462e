"""The profile cache: validated profiles kept as JSON, so `run` and `validate` skip pydantic.

Like ruff's and mypy's caches: correct because the key covers every input.

What is cached: for ``run`` (every mode, ``--dry-run`` and the SIGHUP reload too) the selected
profile with ``extends`` applied, as plain data, rebuilt as light frozen objects made from the
mixins of :mod:`agent.config.rules` (same attributes, same answers, no pydantic); for
``validate`` the lines a *passing* validation prints (a failing one is never cached).

The key (SHA-256) covers everything that decides the result:

- the configuration discovery finds now (discovery runs every time): the file's absolute path
  and the SHA-256 of its bytes, or the ``AZURESUBSCRIPTION_*`` values without a file;
- every ``AZAUTH_*`` variable, case-insensitively: pydantic-settings reads them all; aside are
  the cache's own (``AZAUTH_CACHE_DIR``, ``AZAUTH_PROFILE_CACHE``) and those azauth writes for
  the programs it starts (``AZAUTH_EXEC_PROFILE``, ``AZAUTH_FEEDS_DIR``,
  ``AZAUTH_OIDC_REQUEST_URL``, ``AZAUTH_OIDC_REQUEST_TOKEN``), which configure nothing;
- the command-line inputs (``--config``, ``--profile``, the settings flags), the command and the
  working directory;
- the code: azauth's version, the size and modification time of every ``agent/**/*.py``, those
  of pydantic, pydantic-core, pydantic-settings and PyYAML, the Python version, :data:`FORMAT`.

An entry also records every other variable the load looked up (``AZAUTH_CONFIG``, ``HOME``,
``XDG_CONFIG_HOME``, each ``${VAR}`` of an output path, ...), as SHA-256 of the value or absent,
and the output files whose state validation checked: a different value, or a file-system
problem at one of those paths now (:mod:`agent.config.fschecks`), means full validation. A load
that depends on something outside the environment (``~user`` in a path: the password database)
is not cached; nor is one whose entry would hold a secret (the entry is refused when a variable
that holds System.AccessToken was looked up, or when it holds anything shaped like a token).

Where: ``<cache_dir>/profiles/<key>.json``, ``cache_dir`` as the token cache's
(:func:`agent.credential_helpers.cache.cache_dir`). Written with
:func:`agent.outputs._atomic.atomic_write` (``0600`` files, ``0700`` directories, never through a
symbolic link); read only from a trusted directory, only a regular file of the user's that
others cannot read (:func:`agent.credential_helpers.cache.read_private`); an entry embeds the
key it answers, so one copied or renamed to another key's name is ignored, and starts with the
SHA-256 of the rest, so one damaged in any way (even into other valid JSON) is ignored too. Any
problem with the cache (an untrusted or unwritable directory, a corrupt, truncated or foreign
entry) means full validation, logged at debug level, never an error. Entries unused for
:data:`SWEEP_AGE` are removed, at most once per :data:`SWEEP_INTERVAL` (a hit updates its
entry's modification time).

``AZAUTH_PROFILE_CACHE=0`` turns the cache off. Import-light: no pydantic, no pathlib, no
aiohttp at import time; a hit imports :mod:`agent.config.rules` and
:mod:`agent.config.resolution` (``run``) or nothing more (``validate``).
"""

# os, not pathlib: the memoised `azauth validate` must not pay for pathlib's import.
# ruff: noqa: PTH100, PTH109, PTH116, PTH118, PTH120

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping

from agent import envvars
from agent._version import __version__
from agent.config.discovery import find_config_path
from agent.config.fschecks import filesystem_problem
from agent.credential_helpers.cache import (
    SWEEP_AGE,
    cache_dir,
    is_key,
    owned_by_user,
    read_private,
    sha256_hex,
)

TYPE_CHECKING = False  # not from typing: see agent/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from agent.config.loading import LoadedConfig
    from agent.config.resolution import ResolvedProfile

__all__ = [
    "CACHE_ENV",
    "FORMAT",
    "MAX_ENTRY_BYTES",
    "SWEEP_AGE",
    "SWEEP_INTERVAL",
    "CompiledProfile",
    "code_identity",
    "enabled",
    "light_profile",
    "load_profile",
    "profile_data",
    "validated",
]

FORMAT = 2
"""Part of every key and entry: a new format never reads an old one."""

CACHE_ENV = envvars.AZAUTH_PROFILE_CACHE
MAX_ENTRY_BYTES = 64 * 1024 * 1024
"""The largest entry written and read: a profile file may hold 16 MiB, and thousands of outputs
make an entry larger than a token cache entry may be (256 KiB)."""
SWEEP_INTERVAL = 24 * 3600.0
"""Seconds between two sweeps of the cache directory (a marker file records the last one)."""

_OFF = frozenset({"0", "false", "no", "off"})
# Not configuration: the cache's own variables, and those azauth writes for the programs it
# starts (pydantic-settings reads only AZAUTH_<field of the file>; none of these names one). One
# is a secret, and they change with every `exec`/`serve`: keyed, a nested `run` would always miss.
_NOT_KEYED = frozenset(
    {
        envvars.AZAUTH_CACHE_DIR,
        envvars.AZAUTH_PROFILE_CACHE,
        envvars.AZAUTH_EXEC_PROFILE,
        envvars.AZAUTH_FEEDS_DIR,
        envvars.AZAUTH_OIDC_REQUEST_URL,
        envvars.AZAUTH_OIDC_REQUEST_TOKEN,
    }
)
_SECRET_VARIABLES = frozenset(
    {envvars.SYSTEM_ACCESSTOKEN, envvars.AZAUTH_OIDC_REQUEST_TOKEN, envvars.AGENT_PROXYPASSWORD}
)
_SUBDIRECTORY = "profiles"
_SUFFIX = ".json"
_SWEPT = ".swept"
_PACKAGES = ("pydantic", "pydantic_core", "pydantic_settings", "yaml")
_AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_MODEL_NAMES = {
    "settings": "Settings",
    "connection": "Connection",
    "registry": "RegistryBinding",
    "feed": "Feed",
    "token_file": "TokenFileOutput",
    "federated_token_file": "FederatedTokenFileOutput",
    "env_file": "EnvFileOutput",
    "pipeline_variables": "PipelineVariablesOutput",
    "docker_config": "DockerConfigOutput",
    "npmrc": "NpmrcOutput",
    "maven_settings": "MavenSettingsOutput",
    "feed_env_file": "FeedEnvFileOutput",
}


def enabled(env: Mapping[str, str]) -> bool:
    """Whether the cache is used: not turned off by ``AZAUTH_PROFILE_CACHE=0``."""
    return (env.get(CACHE_ENV) or "").strip().lower() not in _OFF


class CompiledProfile:
    """The profile ``run`` uses, and where it came from.

    Attributes:
        source: the profile file as discovery named it, or ``None`` (``AZURESUBSCRIPTION_*``).
        profile: the resolved profile; light objects when it came from the cache.
        cached: whether it came from the cache.
    """

    __slots__ = ("cached", "profile", "source")

    def __init__(self, source: str | None, profile: ResolvedProfile, *, cached: bool) -> None:
        self.source = source
        self.profile = profile
        self.cached = cached

    def __repr__(self) -> str:
        return f"CompiledProfile(source={self.source!r}, cached={self.cached})"


def load_profile(
    config: str | None,
    profile: str | None,
    settings_overrides: Mapping[str, object] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> CompiledProfile:
    """Return profile ``profile`` of the configuration, from the cache when its inputs match.

    Args:
        config: ``--config`` (``None``: discovery).
        profile: ``--profile`` (``None``: ``AZAUTH_PROFILE``, ``default_profile``, the only one).
        settings_overrides: ``[settings]`` values from command-line flags (``None`` values are
            ignored), as :func:`agent.config.load_config` takes them.
        env: the environment (default ``os.environ``).

    Raises:
        ConfigError: as :func:`agent.config.load_config` and
            :meth:`agent.config.LoadedConfig.profile`.
    """
    environ = os.environ if env is None else env
    overrides = {k: v for k, v in (settings_overrides or {}).items() if v is not None}
    found = _key("run", config, profile, overrides, environ)
    if found is not None:
        entry = _read_entry(environ, found[0])
        if entry is not None:
            try:
                light = light_profile(entry["profile"])
                source = entry["source"]
                if source is None or isinstance(source, str):
                    return CompiledProfile(source, light, cached=True)
            except (KeyError, TypeError, ValueError, AttributeError):
                _debug("profile_cache_entry_malformed")
    from agent.config.loading import load_config  # noqa: PLC0415 - pydantic: only on a miss

    recording = _RecordingEnv(environ)
    loaded = load_config(config, env=recording, settings_overrides=overrides)
    resolved = loaded.profile(profile)
    source = str(loaded.source) if loaded.source is not None else None
    if found is not None:
        payload = {"source": source, "profile": profile_data(resolved)}
        _remember(environ, found, recording, loaded, payload)
    return CompiledProfile(source, resolved, cached=False)


def validated(
    config: str | None,
    profile: str | None,
    verdict: Callable[[LoadedConfig], dict[str, Any]],
    *,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return ``verdict(load_config(config))``, memoised while the inputs stay the same.

    ``verdict`` computes what ``validate`` prints (JSON data) from the loaded configuration; it
    raises when the configuration is not valid, and nothing is cached then.

    Raises:
        ConfigError: the configuration is not valid (never from the cache).
    """
    environ = os.environ if env is None else env
    found = _key("validate", config, profile, {}, environ)
    if found is not None:
        entry = _read_entry(environ, found[0])
        if entry is not None and isinstance(entry.get("verdict"), dict):
            result: dict[str, Any] = entry["verdict"]
            return result
    from agent.config.loading import load_config  # noqa: PLC0415 - pydantic: only on a miss

    recording = _RecordingEnv(environ)
    loaded = load_config(config, env=recording)
    result = verdict(loaded)
    if found is not None:
        _remember(environ, found, recording, loaded, {"verdict": result})
    return result


# ------------------------------------------------------------------------------------------------
# Light objects


class _Frozen:
    """A light model: its fields in ``__dict__`` (in the model's order), frozen.

    Equality and hash as pydantic's frozen models (same class and same values), a repr like
    theirs; assignment and deletion are refused.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "__dict__", values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name!r} cannot be assigned")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name!r} cannot be deleted")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({fields})"


_LIGHT: dict[str, type[_Frozen]] = {}


def _light_class(kind: str) -> type[_Frozen]:
    """The light class of ``kind`` (an output kind, or settings/connection/registry/feed)."""
    found = _LIGHT.get(kind)
    if found is None:
        from agent.config import rules  # noqa: PLC0415 - not on the memoised validate path

        mixin: type = {
            "settings": rules.SettingsRules,
            "connection": rules.ConnectionRules,
            "registry": rules.RegistryBindingRules,
            "feed": rules.FeedRules,
        }.get(kind) or rules.OUTPUT_RULES[kind]
        name = _MODEL_NAMES[kind]
        found = type(name, (mixin, _Frozen), {"__module__": __name__, "__qualname__": name})
        _LIGHT[kind] = found
    return found


def _light(kind: str, values: object) -> Any:
    if not isinstance(values, dict) or not all(isinstance(name, str) for name in values):
        raise TypeError("an entry's object is not a table")
    return _light_class(kind)(dict(values))


def _fields(model: Any) -> dict[str, Any]:
    """The fields of a validated model, in order, as JSON data."""
    return {name: getattr(model, name) for name in type(model).model_fields}


def profile_data(profile: ResolvedProfile) -> dict[str, Any]:
    """``profile`` (validated models or light objects) as JSON data for :func:`light_profile`."""

    def fields(item: Any) -> dict[str, Any]:
        return dict(item.__dict__) if isinstance(item, _Frozen) else _fields(item)

    return {
        "name": profile.name,
        "description": profile.description,
        "az_login": profile.az_login,
        "settings": fields(profile.settings),
        "connections": {name: fields(c) for name, c in profile.connections.items()},
        "outputs": [fields(output) for output in profile.outputs],
        "registries": {host: fields(binding) for host, binding in profile.registries.items()},
        "feeds": [fields(feed) for feed in profile.feeds],
    }


def light_profile(data: Mapping[str, Any]) -> ResolvedProfile:
    """Rebuild the :class:`~agent.config.resolution.ResolvedProfile` of :func:`profile_data`.

    Raises:
        KeyError, TypeError, ValueError: ``data`` is not what :func:`profile_data` returns.
    """
    from agent.config.resolution import ResolvedProfile  # noqa: PLC0415

    outputs = []
    for values in data["outputs"]:
        if not isinstance(values, dict) or values.get("kind") not in _MODEL_NAMES:
            raise ValueError("an output of unknown kind")
        outputs.append(_light(values["kind"], values))
    name, description, az_login = data["name"], data["description"], data["az_login"]
    if not isinstance(name, str) or not isinstance(az_login, bool):
        raise TypeError("name or az_login")
    return ResolvedProfile(
        name,
        description,
        {n: _light("connection", v) for n, v in data["connections"].items()},
        outputs,
        _light("settings", data["settings"]),
        registries={h: _light("registry", v) for h, v in data["registries"].items()},
        feeds=[_light("feed", v) for v in data["feeds"]],
        az_login=az_login,
    )


# ------------------------------------------------------------------------------------------------
# The key


def code_identity(root: str = _AGENT_DIR, packages: tuple[str, ...] = _PACKAGES) -> list[Any]:
    """What identifies the code that validates: a change to it changes the key.

    ``root``: azauth's package directory (every ``*.py`` below it, by size and modification
    time, so an edit in an editable checkout counts); ``packages``: the libraries whose
    ``__init__.py`` and ``version.py`` are identified the same way (found without importing).
    """
    files = _source_files(root)
    libraries: list[Any] = []
    from importlib.machinery import PathFinder  # noqa: PLC0415 - loaded at start-up anyway

    for name in packages:
        spec = PathFinder.find_spec(name)
        origin = spec.origin if spec is not None else None
        identified: list[Any] = [name, origin]
        if origin:
            for path in (origin, os.path.join(os.path.dirname(origin), "version.py")):
                try:
                    info = os.stat(path)
                except OSError:
                    continue
                identified.append((path, info.st_size, info.st_mtime_ns))
        libraries.append(identified)
    return [__version__, sys.version, sys.implementation.cache_tag, files, libraries]


def _source_files(root: str) -> list[tuple[str, int, int]]:
    """``(path below root, size, mtime_ns)`` of every ``*.py`` below ``root``, sorted."""
    files: list[tuple[str, int, int]] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as found:
                entries = list(found)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != "__pycache__":
                        pending.append(entry.path)
                elif entry.name.endswith(".py"):
                    info = entry.stat()
                    files.append((entry.path[len(root) :], info.st_size, info.st_mtime_ns))
            except OSError:
                continue
    files.sort()
    return files


def _digest(value: str | None) -> str | None:
    return None if value is None else sha256_hex(value.encode("utf-8", "surrogatepass"))


def _keyed_variables(env: Mapping[str, str]) -> dict[str, str | None]:
    """Every ``AZAUTH_*`` variable (any case) but :data:`_NOT_KEYED`, as SHA-256 of its value."""
    return {
        name: _digest(env[name])
        for name in sorted(env)
        if name.upper().startswith(envvars.AZAUTH_PREFIX) and name.upper() not in _NOT_KEYED
    }


def _source(config: str | None, env: Mapping[str, str], cwd: str) -> list[Any] | None:
    """``[absolute path, SHA-256 of its bytes]`` or ``[None, SHA-256 of the implicit data]``.

    ``None`` when discovery fails (full validation reports it).
    """
    from agent._dirtrust import read_regular_file  # noqa: PLC0415
    from agent.config.discovery import implicit_config_data  # noqa: PLC0415
    from agent.exceptions import ConfigError  # noqa: PLC0415

    try:
        path = find_config_path(config, env, cwd)
        if path is None:
            implicit = implicit_config_data(env, [])
            canonical = json.dumps(implicit, sort_keys=True, separators=(",", ":"))
            return [None, sha256_hex(canonical.encode())]
        return [os.path.join(cwd, path), sha256_hex(read_regular_file(path))]
    except (ConfigError, OSError, ValueError):
        return None


def _key(
    command: str,
    config: str | None,
    profile: str | None,
    overrides: Mapping[str, object],
    env: Mapping[str, str],
) -> tuple[str, str] | None:
    """``(key, digest of the configuration)``, or ``None`` when the cache is not to be used."""
    if not enabled(env):
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    source = _source(config, env, cwd)
    if source is None:
        return None
    inputs = [
        FORMAT,
        command,
        cwd,
        config,
        profile,
        sorted(overrides.items()),
        source,
        _keyed_variables(env),
        code_identity(),
    ]
    text = json.dumps(inputs, separators=(",", ":"), default=repr)
    return sha256_hex(text.encode("utf-8", "surrogatepass")), source[1]


# ------------------------------------------------------------------------------------------------
# Entries


def _directory(env: Mapping[str, str]) -> str:
    return os.path.join(cache_dir(env), _SUBDIRECTORY)


def _read_entry(env: Mapping[str, str], key: str) -> dict[str, Any] | None:
    """The entry of ``key`` if it is trusted, well formed and its recorded inputs still hold."""
    path = os.path.join(_directory(env), key + _SUFFIX)
    data = read_private(path, max_bytes=MAX_ENTRY_BYTES)
    if data is None:
        return None
    entry = _parse(data)
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
        _debug("profile_cache_entry_foreign")
        return None
    recorded, paths = entry.get("env"), entry.get("paths")
    if not isinstance(recorded, dict) or not isinstance(paths, list):
        return None
    for name, digest in recorded.items():
        if _digest(env.get(name)) != digest:
            return None
    for written in paths:
        if not isinstance(written, str) or filesystem_problem(written) is not None:
            return None
    try:  # noqa: SIM105 - contextlib would cost the memoised validate its import
        # Used now: the sweep keeps it (read from a trusted directory: no link on the way).
        os.utime(path, follow_symlinks=False)
    except OSError:
        pass
    return entry


def _parse(data: bytes) -> object:
    """The JSON of an entry, or ``None`` when its first line is not the SHA-256 of the rest."""
    check, _, text = data.partition(b"\n")
    if sha256_hex(text).encode() != check:  # damaged in any way, even into valid JSON
        _debug("profile_cache_entry_damaged")
        return None
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError):
        _debug("profile_cache_entry_unreadable")
        return None


def _remember(
    env: Mapping[str, str],
    found: tuple[str, str],
    recording: _RecordingEnv,
    loaded: LoadedConfig,
    payload: dict[str, Any],
) -> None:
    """Store ``payload`` under ``found``'s key, unless that would not be safe or correct."""
    key, digest = found
    if recording.outside:
        _debug("profile_cache_not_stored", reason="depends on " + recording.outside[0])
        return
    if loaded.digest != digest:  # the file changed between the key and the load
        _debug("profile_cache_not_stored", reason="the configuration changed while loading")
        return
    token_variables = _SECRET_VARIABLES | {
        connection.system_access_token_env for connection in loaded.config.connections.values()
    }
    if any(recording.looked.get(name) for name in token_variables):
        _debug("profile_cache_not_stored", reason="a variable holding a secret was read")
        return
    from agent._secrets import redact_text  # noqa: PLC0415
    from agent.config.resolution import written_paths  # noqa: PLC0415

    entry = {
        "format": FORMAT,
        "key": key,
        "env": {name: _digest(value) for name, value in sorted(recording.looked.items())},
        "paths": written_paths(loaded.config),
        **payload,
    }
    try:
        text = json.dumps(entry, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        _debug("profile_cache_not_stored", reason="not JSON data")
        return
    if redact_text(text) != text:
        _debug("profile_cache_not_stored", reason="it would hold something shaped like a secret")
        return
    body = text.encode()
    if len(body) + 65 > MAX_ENTRY_BYTES:  # it would never be read back
        _debug("profile_cache_not_stored", reason="larger than MAX_ENTRY_BYTES")
        return
    _write(env, key, sha256_hex(body).encode() + b"\n" + body)


def _write(env: Mapping[str, str], key: str, data: bytes) -> None:
    from agent.outputs._atomic import atomic_write  # noqa: PLC0415 - only on a miss

    directory = _directory(env)
    try:
        atomic_write(os.path.join(directory, key + _SUFFIX), data, mode=0o600)
    except Exception as exc:  # noqa: BLE001 - best effort: any failure means "not cached"
        _debug("profile_cache_not_stored", reason=type(exc).__name__)
        return
    _sweep(directory)


def _sweep(directory: str, now: float | None = None) -> int:
    """Remove entries older than :data:`SWEEP_AGE`, once per :data:`SWEEP_INTERVAL`.

    Best effort, never raises; only regular files of the user named like entries. Returns how
    many were removed.
    """
    import time  # noqa: PLC0415

    from agent._dirtrust import UntrustedDirectoryError, trusted_directory  # noqa: PLC0415

    now = time.time() if now is None else now
    try:
        folder = trusted_directory(directory)
    except (OSError, UntrustedDirectoryError):
        return 0
    removed = 0
    with folder:
        try:
            if now - folder.lstat(_SWEPT).st_mtime < SWEEP_INTERVAL:
                return 0
        except OSError:
            pass
        try:
            names = folder.listdir()
        except OSError:
            return 0
        for name in names:
            if not _is_entry_name(name):
                continue
            try:
                info = folder.lstat(name)
                if (
                    owned_by_user(info)
                    and stat.S_ISREG(info.st_mode)
                    and now - info.st_mtime > SWEEP_AGE
                ):
                    folder.unlink(name)
                    removed += 1
            except OSError:
                continue
    _write_marker(directory)
    return removed


def _write_marker(directory: str) -> None:
    from agent.outputs._atomic import atomic_write  # noqa: PLC0415

    try:
        atomic_write(os.path.join(directory, _SWEPT), b"", mode=0o600)
    except Exception as exc:  # noqa: BLE001 - the next write sweeps again
        _debug("profile_cache_sweep_marker", reason=type(exc).__name__)


def _is_entry_name(name: str) -> bool:
    return name.endswith(_SUFFIX) and is_key(name[: -len(_SUFFIX)])


def _debug(event: str, **details: str) -> None:
    """A debug record through the standard library (no handler: dropped; never on stdout)."""
    import logging  # noqa: PLC0415 - only on a miss or a broken entry

    logging.getLogger(__name__).debug("%s %s", event, details)


class _RecordingEnv(Mapping[str, str]):
    """``env`` as a Mapping that records each variable looked up (not those iterated over).

    Iterating is how pydantic-settings reads the ``AZAUTH_*`` overrides, which the key covers
    whole. :func:`agent.config.discovery.note_outside_environment` records what a load read
    outside the environment.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.looked: dict[str, str | None] = {}
        self.outside: list[str] = []

    def __getitem__(self, name: str) -> str:
        self.looked[name] = self._env.get(name)
        return self._env[name]

    def get(self, name: str, default: Any = None) -> Any:
        value = self._env.get(name)
        self.looked[name] = value
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self.looked[name] = self._env.get(name)
        return name in self._env

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)

    def items(self) -> Any:
        return self._env.items()

    def note_outside_environment(self, what: str) -> None:
        self.outside.append(what)
