"""Load a profile file: TOML or YAML, ``AZAUTH_*`` overrides, precedence and profile selection.

Precedence, highest first (one place: :meth:`_LoadPlan.sources`)::

    settings_overrides (command-line flags)  >  AZAUTH_* environment  >  the profile file

The file is read once: the same bytes are hashed (``LoadedConfig.digest``) and parsed. Parsing
is strict: TOML and YAML syntax errors carry the line and column, YAML duplicate keys are refused,
and so is any literal token in the file. Every failure is a :class:`ConfigError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_settings import (
    EnvSettingsSource,
    InitSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from agent import envvars
from agent._dirtrust import read_regular_file
from agent.config.discovery import (
    IMPLICIT_NAME,
    IMPLICIT_VARIABLES,
    candidate_paths,
    find_config_file,
    implicit_config_data,
    syntax_of,
    working_directory,
)
from agent.config.errors import (
    Finding,
    KeyPath,
    Problem,
    config_error,
    did_you_mean,
    format_key_path,
    from_validation_error,
    looks_like_jwt,
)
from agent.config.models import LOAD_PLAN_KEY, PATTERN_MEANINGS, AzauthConfig
from agent.config.paths import expand_output_paths
from agent.config.resolution import ResolvedProfile, resolve_profile
from agent.exceptions import ConfigError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
    from pydantic_settings.sources.types import Traversable

__all__ = ["PROFILE_ENV", "LoadedConfig", "load_config", "parse_document"]

PROFILE_ENV = envvars.AZAUTH_PROFILE
_ENV_PREFIX = envvars.AZAUTH_PREFIX
_ENV_DELIMITER = "__"
# Keys that would hold a token or another secret; compared after removing "_" and "-".
_SECRET_KEYS = frozenset(
    {
        "token",
        "accesstoken",
        "systemaccesstoken",
        "oidctoken",
        "idtoken",
        "refreshtoken",
        "bearertoken",
        "clientsecret",
        "clientassertion",
        "password",
    }
)
_LITERAL_TOKEN_EXPECTED = (
    "no secret in the file: name the variable that holds System.AccessToken with "  # noqa: S105
    "system_access_token_env, and map it into the step with "
    "`env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`"
)
_SYNTAX_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated configuration and where it came from.

    Attributes:
        source: the profile file, or ``None`` for the implicit configuration from the
            ``AZURESUBSCRIPTION_*`` variables.
        digest: SHA-256 (hex) of the file's bytes, or of the implicit values.
        config: the validated root model.
    """

    source: Path | None
    digest: str
    config: AzauthConfig
    # Only AZAUTH_PROFILE is kept from an explicit `env=`: the mapping may hold secrets.
    _selection_env: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def profile_names(self) -> list[str]:
        """The names of the profiles, in file order."""
        return list(self.config.profiles)

    def select_profile_name(
        self, name: str | None = None, *, env: Mapping[str, str] | None = None
    ) -> str:
        """Return the name of the profile to use.

        Selection: ``name`` (``--profile``) > ``AZAUTH_PROFILE`` > ``default_profile`` > the only
        profile.

        Raises:
            ConfigError: the named profile does not exist, or several exist and none is chosen.
        """
        environ = env if env is not None else self._selection_env
        if environ is None:
            environ = os.environ
        names = self.profile_names
        file = str(self.source) if self.source is not None else None
        from_env = (environ.get(PROFILE_ENV) or "").strip()  # names hold no whitespace
        for chosen, origin in ((name, "--profile"), (from_env, PROFILE_ENV)):
            if not chosen:
                continue
            if chosen not in self.config.profiles:
                raise ConfigError(
                    f"unknown profile {chosen!r} (named by {origin}){did_you_mean(chosen, names)}",
                    file=file,
                    key_path="profiles",
                    expected=f"one of: {', '.join(names)}",
                )
            return chosen
        if self.config.default_profile is not None:
            return self.config.default_profile
        if len(names) == 1:
            return names[0]
        raise ConfigError(
            f"{len(names)} profiles are defined and none is selected",
            file=file,
            key_path="default_profile",
            expected=(
                f"--profile NAME, {PROFILE_ENV}=NAME or default_profile in the file; "
                f"profiles: {', '.join(names)}"
            ),
        )

    def profile(
        self, name: str | None = None, *, env: Mapping[str, str] | None = None
    ) -> ResolvedProfile:
        """Return the selected profile with ``extends`` applied (see :meth:`select_profile_name`).

        Raises:
            ConfigError: no profile can be selected.
        """
        return resolve_profile(self.config, self.select_profile_name(name, env=env))


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    settings_overrides: Mapping[str, object] | None = None,
) -> LoadedConfig:
    """Find, read and validate the configuration.

    Args:
        path: the profile file (``--config``); ``None`` searches (:mod:`agent.config.discovery`).
        env: the environment to read (default ``os.environ``): ``AZAUTH_CONFIG``,
            ``AZAUTH_*`` overrides, ``AZURESUBSCRIPTION_*``, ``AZAUTH_PROFILE``.
        settings_overrides: ``[settings]`` values from command-line flags; ``None`` values are
            ignored, so unset flags can be passed as they are.

    Raises:
        ConfigError: the file is missing, unreadable or invalid; or there is no file and no
            ``AZURESUBSCRIPTION_*`` connection.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    cwd = working_directory()
    source = find_config_file(path, environ, cwd)
    implicit = (
        implicit_config_data(environ, candidate_paths(environ, cwd)) if source is None else None
    )
    overrides = {
        key: value for key, value in (settings_overrides or {}).items() if value is not None
    }
    plan = _LoadPlan(source, implicit, environ)
    init: dict[str, Any] = {LOAD_PLAN_KEY: plan}
    if overrides:
        init["settings"] = overrides
    try:
        config = AzauthConfig(**init)
    except ValidationError as exc:
        raise plan.config_error(exc, {"settings": overrides} if overrides else {}) from None
    except SettingsError as exc:
        raise ConfigError(
            f"an {_ENV_PREFIX}* environment variable could not be read: {exc}",
            expected="JSON for list and table values",
        ) from None
    selection_env = None
    if env is not None:
        selection_env = {PROFILE_ENV: env[PROFILE_ENV]} if PROFILE_ENV in env else {}
    return LoadedConfig(source, plan.digest(), config, selection_env)


class _StrictFileSource:
    """What the TOML and YAML sources share: azauth's strict parser, the digest, paths expanded."""

    syntax = ""

    def _remember(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path = path
        self.environ = environ
        self.digest = ""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        raw = _read_bytes(file_path, self.path)
        self.digest = hashlib.sha256(raw).hexdigest()
        data = parse_document(raw, self.syntax, file=str(self.path))
        return _expand_paths(data, self.environ, str(self.path))


class TomlProfileSource(_StrictFileSource, TomlConfigSettingsSource):
    """pydantic-settings' TOML source, reading with azauth's strict parser."""

    syntax = "toml"

    def __init__(
        self, settings_cls: type[BaseSettings], path: Path, environ: Mapping[str, str]
    ) -> None:
        self._remember(path, environ)
        super().__init__(settings_cls, toml_file=path)


class YamlProfileSource(_StrictFileSource, YamlConfigSettingsSource):
    """pydantic-settings' YAML source, reading with azauth's strict parser."""

    syntax = "yaml"

    def __init__(
        self, settings_cls: type[BaseSettings], path: Path, environ: Mapping[str, str]
    ) -> None:
        self._remember(path, environ)
        super().__init__(settings_cls, yaml_file=path)


class MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.data: dict[str, Any] = {}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            (name if self.case_sensitive else name.lower()): value
            for name, value in self.environ.items()
            if not (self.env_ignore_empty and value == "")
        }

    def __call__(self) -> dict[str, Any]:
        self.data = super().__call__()
        return self.data


@dataclass
class _LoadPlan:
    """The sources of one ``load_config`` call, kept to explain errors afterwards."""

    path: Path | None
    implicit: dict[str, Any] | None
    environ: Mapping[str, str]
    env_source: MappingEnvSource | None = None
    file_source: TomlProfileSource | YamlProfileSource | None = None

    def sources(
        self, settings_cls: type[BaseSettings], init_settings: InitSettingsSource
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Return the sources, highest precedence first."""
        self.env_source = MappingEnvSource(settings_cls, self.environ)
        if self.path is None:
            implicit = InitSettingsSource(settings_cls, init_kwargs=self.implicit or {})
            return (init_settings, self.env_source, implicit)
        if syntax_of(self.path) == "toml":
            self.file_source = TomlProfileSource(settings_cls, self.path, self.environ)
        else:
            self.file_source = YamlProfileSource(settings_cls, self.path, self.environ)
        return (init_settings, self.env_source, self.file_source)

    def digest(self) -> str:
        if self.file_source is not None:
            return self.file_source.digest
        canonical = json.dumps(self.implicit, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def file_data(self) -> dict[str, Any]:
        if self.file_source is not None:
            data: dict[str, Any] = self.file_source.init_kwargs
            return data
        return self.implicit or {}

    def config_error(self, exc: ValidationError, init_data: dict[str, Any]) -> ConfigError:
        """Convert ``exc``, blaming the flag, variable or file each bad value came from."""
        env_data = self.env_source.data if self.env_source is not None else {}
        merged = _merge(_merge(self.file_data(), env_data), init_data)

        def origin_of(path: KeyPath) -> str | None:
            if _provided(init_data, path) is not None:
                return "a command-line option"
            depth = _provided(env_data, path)
            if depth is not None:
                parts = [str(part).upper() for part in path[:depth]]
                return f"environment variable {_ENV_PREFIX}{_ENV_DELIMITER.join(parts)}"
            if self.path is None and path[:2] == ("connections", IMPLICIT_NAME) and len(path) > 2:
                variable = IMPLICIT_VARIABLES.get(str(path[2]))
                return f"environment variable {variable}" if variable else None
            return None

        file = str(self.path) if self.path is not None else None
        return from_validation_error(
            exc,
            model=AzauthConfig,
            data=merged,
            file=file,
            origin_of=origin_of,
            pattern_meanings=PATTERN_MEANINGS,
        )


def parse_document(raw: bytes, syntax: str, *, file: str) -> dict[str, Any]:
    """Parse ``raw`` as ``syntax`` (``"toml"`` or ``"yaml"``) into a table, strictly.

    Raises:
        ConfigError: the bytes are not UTF-8, the syntax is wrong (with line and column), the top
            level is not a table, a YAML key repeats or is not a string, or a value is a literal
            token.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"not UTF-8 text (byte {exc.start})", file=file, expected="a UTF-8 encoded file"
        ) from None
    data = _parse_toml(text, file) if syntax == "toml" else _parse_yaml(text, file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level is {type(data).__name__}, not a table of keys",
            file=file,
            expected="keys such as `version`, `connections` and `profiles` at the top level",
        )
    problems = list(_scan(data, ()))
    if problems:
        findings = [Finding(format_key_path(p.path), p.message, p.expected) for p in problems]
        raise config_error(findings, file=file)
    return data


def _expand_paths(data: dict[str, Any], environ: Mapping[str, str], file: str) -> dict[str, Any]:
    """Expand ``~`` and ``${VAR}`` in output paths (:mod:`agent.config.paths`).

    Raises:
        ConfigError: an unset or empty variable, an Azure Pipelines macro, an unknown user.
    """
    problems = expand_output_paths(data, environ)
    if problems:
        findings = [Finding(format_key_path(p.path), p.message, p.expected) for p in problems]
        raise config_error(findings, file=file)
    return data


def _read_bytes(file_path: Path | Traversable, shown: Path) -> bytes:
    try:
        if isinstance(file_path, Path):  # non-blocking: a FIFO is refused, never waited on
            return read_regular_file(str(file_path))
        return file_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=str(shown)) from None


def _parse_toml(text: str, file: str) -> object:
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(
            f"nested more than {MAX_DEPTH} levels deep", file=file, expected=_BOUNDS_EXPECTED
        ) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _SYNTAX_POSITION.search(message)
        reason = message[: found.start()] if found else message
        where = f"line {found.group(1)}, column {found.group(2)}: " if found else ""
        raise ConfigError(
            f"{where}invalid TOML: {reason}", file=file, expected="TOML syntax (https://toml.io)"
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError(
            f"nested more than {MAX_DEPTH} levels deep", file=file, expected=_BOUNDS_EXPECTED
        )
    return data


def _depth(node: object) -> int:
    """Nesting depth of tables and lists, measured without recursion."""
    deepest = 0
    pending: list[tuple[object, int]] = [(node, 0)]
    while pending:
        current, level = pending.pop()
        if isinstance(current, dict):
            children: Iterator[object] = iter(current.values())
        elif isinstance(current, list):
            children = iter(current)
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_DEPTH:
            return deepest
        pending.extend((child, level + 1) for child in children)
    return deepest


MAX_DEPTH = 32
"""Deepest nesting of tables and lists a profile file may have (a real one needs 5)."""
MAX_NODES = 10_000
"""Most values a YAML file may expand to, aliases counted as copies (a real one has hundreds)."""
_BOUNDS_EXPECTED = (
    f"a profile file nested at most {MAX_DEPTH} levels deep and at most {MAX_NODES} values "
    "once YAML aliases are expanded"
)


def _parse_yaml(text: str, file: str) -> object:
    from agent.config._yaml import parse_yaml  # noqa: PLC0415 - PyYAML only for YAML files

    return parse_yaml(text, file)


def _scan(node: object, path: KeyPath, *, in_variables: bool = False) -> Iterator[Problem]:
    """Find non-text keys and literal tokens anywhere in the parsed document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                yield Problem((*path, str(key)), f"key {key!r} is not text", "keys that are text")
                continue
            normalized = key.lower().replace("_", "").replace("-", "")
            if not in_variables and normalized in _SECRET_KEYS and isinstance(value, str) and value:
                yield Problem(
                    (*path, key),
                    "holds a literal token; azauth never reads secrets from the profile file",
                    _LITERAL_TOKEN_EXPECTED,
                )
                continue
            yield from _scan(value, (*path, key), in_variables=key == "variables")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _scan(item, (*path, index))
    elif looks_like_jwt(node):
        yield Problem(
            path,
            "holds what looks like a token (a JWT); azauth never reads secrets from the file",
            _LITERAL_TOKEN_EXPECTED,
        )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two tables, ``override`` winning (the way pydantic-settings merges sources)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _provided(data: Mapping[str, Any], path: KeyPath) -> int | None:
    """How many leading keys of ``path`` lead to a value in ``data``; ``None`` if none does."""
    node: Any = data
    for depth, part in enumerate(path, start=1):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
        if not isinstance(node, Mapping):
            return depth
    return len(path) if path else None
