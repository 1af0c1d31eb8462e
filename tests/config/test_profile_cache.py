"""The profile cache (agent.config.compiled): light profiles equal validated ones, every input is
in the key, the cache directory and entries are trusted only as the token cache's are, nothing
secret is stored, and a warm ``run`` or ``validate`` never imports pydantic."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent.config import compiled, load_config
from agent.config.compiled import code_identity, light_profile, load_profile, profile_data
from agent.config.resolution import ResolvedProfile
from agent.config.rules import ConnectionRules, OutputRules
from agent.plan import render_plan
from tests.support import (
    ARM,
    CLIENT,
    KV,
    PROD_CI,
    PROD_OTHER_CI,
    ROOT,
    SC,
    SC2,
    SUBSCRIPTION,
    TENANT,
    azauth,
    azauth_async,
    feed_profile,
    program,
    toml_connection,
    toml_output,
    toml_profile,
    toml_table,
)

# ------------------------------------------------------------------------------------------------
# Profile shapes

SHAPES: dict[str, str] = {
    "token files": PROD_CI
    + toml_output("token_file", path="out/arm.token")
    + toml_output("token_file", path="out/kv.json", scope=KV, format="json")
    + toml_output("federated_token_file", path="out/oidc.jwt"),
    "env files and pipeline variables": toml_connection(subscription=SUBSCRIPTION)
    + toml_profile()
    + toml_output("env_file", path="out/tf.env", preset="terraform")
    + toml_output("env_file", path="out/id.sh", dialect="sh", preset="azure-identity", variables={})
    + toml_output(
        "env_file", path="out/raw.env", variables={"TOKEN": "access_token", "ID": "client_id"}
    )
    + toml_output(
        "pipeline_variables",
        preset="pulumi",
        secret=True,
        secret_variables=["ARM_CLIENT_ID"],
        is_output=True,
    ),
    "docker_config": PROD_CI
    + toml_table('[profiles.ci.registries."contoso.azurecr.io"]', connection="prod")
    + toml_output("docker_config", path="out/config.json", mode="auths")
    + toml_output("docker_config", path="out/helpers.json"),
    "feeds": feed_profile(
        "https://pkgs.dev.azure.com/contoso/_packaging/shared",
        toml_table(
            "[[profiles.ci.feeds]]",
            name="npmfeed",
            url="https://pkgs.dev.azure.com/contoso/_packaging/npm",
            npm_scope="@contoso",
        )
        + toml_output("npmrc", path="out/.npmrc")
        + toml_output("maven_settings", path="out/settings.xml", feeds=["shared"])
        + toml_output("feed_env_file", path="out/feeds.env", dialect="sh"),
    ),
    "extends chain and settings": 'default_profile = "ci"\n'
    + toml_table("[settings]", concurrency=8, refresh_margin=120, fail_fast=True, log_level="info")
    + PROD_OTHER_CI
    + toml_output("token_file", connection="prod", path="out/a.token")
    + toml_table("[profiles.child]", extends="ci", description="the child")
    + toml_output("token_file", "child", connection="other", path="out/b.token", scope=KV)
    + toml_table("[profiles.grandchild]", extends="child", az_login=True)
    + toml_output("federated_token_file", "grandchild", connection="other", path="out/o.jwt"),
    "sovereign cloud and authority": toml_table(
        "[connections.gov]",
        tenant_id=TENANT,
        client_id=CLIENT,
        service_connection_id=SC,
        cloud="usgovernment",
        additionally_allowed_tenants=["*"],
    )
    + toml_table(
        "[connections.local]",
        tenant_id=TENANT,
        client_id=CLIENT,
        service_connection_id=SC2,
        authority="http://127.0.0.1:8400",
        system_access_token_env="MY_TOKEN",
        scope=KV,
    )
    + toml_profile("ci", "gov", "local")
    + toml_output("token_file", connection="gov", path="out/gov.token")
    + toml_output("token_file", connection="local", path="out/local.token"),
}

_EXAMPLES = {
    "azauth.toml.example": (ROOT / "azauth.toml.example").read_text(),
    "azauth.yaml.example": (ROOT / "azauth.yaml.example").read_text(),
}

_OUTPUT_ATTRIBUTES = ("target", "on_stdout", "mapped_variables")
_OUTPUT_ANSWERS = (
    "needs_access_token",
    "kept_federated_token",
    "exchanges_at_registries",
    "plan_connection_notes",
    "competing_kept",
    "feed_names",
)
_OUTPUT_PROFILE_ANSWERS = (
    "needs_oidc",
    "token_scope",
    "federated_token_reference",
    "registries_for",
    "describe",
)


def _answers(profile: ResolvedProfile, env: dict[str, str]) -> list[Any]:
    """Every answer of the profile's objects (rules methods and ResolvedProfile's own)."""
    found: list[Any] = [profile.name, profile.description, profile.az_login]
    found.append([(n, getattr(profile.settings, n)) for n in _field_names(profile.settings)])
    for name, connection in profile.connections.items():
        found.append([(n, getattr(connection, n)) for n in _field_names(connection)])
        found += [name, connection.cloud_info, connection.default_scope]
        found.append(_answer(connection.authority_url, env))
        found.append(_answer(connection.system_access_token, env))
    for index, output in enumerate(profile.outputs):
        assert output.connection is not None
        connection = profile.connections[output.connection]
        found.append([(n, getattr(output, n)) for n in _field_names(output)])
        found += [getattr(output, attribute) for attribute in _OUTPUT_ATTRIBUTES]
        found += [getattr(output, answer)() for answer in _OUTPUT_ANSWERS]
        found += [getattr(output, answer)(profile) for answer in _OUTPUT_PROFILE_ANSWERS]
        where = ("profiles", profile.name, "outputs", index)
        values = {"ARM_CLIENT_ID": CLIENT, "TOKEN": "x" * 40, "ARM_USE_OIDC": "true"}
        found += [
            list(output.written_files(output.connection, where)),
            output.secret_names(values),
            output.unset_variables(values),
            output.unmasked_under_secret_true(connection),
            output.unmasked_under_secret_true(None),
            list(output.connection_problems(connection, output.connection, where)),
            list(output.registry_problems(profile.name, where, set(), implicit=True)),
            output.pipeline_variable_names(connection, where),
            output.federated_token_problem(profile.name, where, output.connection),
            profile.scope_for(output),
            profile.federated_token_file_for(output.connection),
        ]
        if output.feed_names() is not None:
            found.append([(f.name, f.url, f.connection) for f in profile.feeds_for(output)])
    found.append({h: (b.connection, b.scope) for h, b in profile.registries.items()})
    found.append([(f.name, f.url, f.connection, f.npm_scope) for f in profile.feeds])
    found.append(render_plan(profile, env))
    return found


def _answer(method: Any, *args: Any) -> object:
    """``method(*args)``, or the error it raises as ``(class name, message)``."""
    try:
        return method(*args)
    except Exception as exc:  # noqa: BLE001 - errors are answers too
        return (type(exc).__name__, str(exc))


def _field_names(item: Any) -> list[str]:
    fields = getattr(type(item), "model_fields", None)
    return list(fields) if fields is not None else list(item.__dict__)


def _light_copy(profile: ResolvedProfile) -> ResolvedProfile:
    return light_profile(json.loads(json.dumps(profile_data(profile))))


def _write_shape(tmp_path: Path, name: str, text: str) -> Path:
    suffix = ".yaml" if "yaml" in name else ".toml"
    path = tmp_path / f"azauth{suffix}"
    path.write_text(text)
    return path


@pytest.mark.parametrize("shape", [*SHAPES, *_EXAMPLES])
def test_a_light_profile_answers_as_the_validated_one(
    shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    text = SHAPES.get(shape) or _EXAMPLES[shape]
    path = _write_shape(tmp_path, shape, text)
    env = {"SYSTEM_ACCESSTOKEN": "system-token-value", "MY_TOKEN": "other-token-value"}
    loaded = load_config(path)
    for name in loaded.profile_names:
        validated = loaded.profile(name)
        light = _light_copy(validated)
        assert _answers(light, env) == _answers(validated, env)
        assert repr(light) == repr(validated)
        for model, copy in zip(validated.outputs, light.outputs, strict=True):
            assert type(copy).__name__ == type(model).__name__
            assert isinstance(copy, OutputRules)
            assert "pydantic" not in repr(type(copy).__mro__)
        for connection in light.connections.values():
            assert isinstance(connection, ConnectionRules)
        assert hash(light.settings) == hash(_light_copy(validated).settings)
        assert light.settings == _light_copy(validated).settings


def test_the_implicit_configuration_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AZURESUBSCRIPTION_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURESUBSCRIPTION_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", SC)
    validated = load_config().profile()
    env = {"SYSTEM_ACCESSTOKEN": "system-token-value"}
    assert _answers(_light_copy(validated), env) == _answers(validated, env)
    first = load_profile(None, None)
    second = load_profile(None, None)
    assert (first.cached, second.cached) == (False, True)
    assert second.source is None
    assert _answers(second.profile, env) == _answers(validated, env)


def test_light_objects_are_frozen_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "azauth.toml").write_text(SHAPES["token files"])
    light = _light_copy(load_config().profile())
    connection = light.connections["prod"]
    with pytest.raises(AttributeError, match="frozen"):
        connection.tenant_id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del connection.client_id
    again = _light_copy(load_config().profile())
    assert connection == again.connections["prod"]
    with pytest.raises(TypeError, match="unhashable"):  # a list field, as pydantic's
        hash(connection)
    assert hash(light.settings) == hash(again.settings)
    assert light.outputs[0] != light.outputs[1]
    assert connection != load_config().profile().connections["prod"]  # another class


# ------------------------------------------------------------------------------------------------
# The key: each input, its own test


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with an empty HOME, the cache under tmp_path/cache."""
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return work


def _entries(tmp_path: Path) -> list[Path]:
    directory = tmp_path / "cache" / "azauth" / "profiles"
    return sorted(directory.glob("*.json")) if directory.exists() else []


def _twice(*args: Any, **kwargs: Any) -> tuple[compiled.CompiledProfile, compiled.CompiledProfile]:
    return load_profile(*args, **kwargs), load_profile(*args, **kwargs)


def test_a_second_load_is_a_hit_and_an_edit_of_the_same_size_is_not(work: Path) -> None:
    path = work / "azauth.toml"
    path.write_text(PROD_CI + toml_output("token_file", path="out/aaa.token"))
    first, second = _twice(None, None)
    assert (first.cached, second.cached) == (False, True)
    before = path.stat()
    path.write_text(PROD_CI + toml_output("token_file", path="out/bbb.token"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    edited = load_profile(None, None)
    assert not edited.cached
    assert edited.profile.outputs[0].path == "out/bbb.token"
    assert load_profile(None, None).cached


def test_another_file_found_by_discovery_is_not_the_cached_one(work: Path, tmp_path: Path) -> None:
    user = tmp_path / "home" / ".config" / "azauth"
    user.mkdir(parents=True)
    (user / "azauth.toml").write_text(PROD_CI + toml_output("token_file", path="out/user.token"))
    assert _twice(None, None)[1].profile.outputs[0].path == "out/user.token"
    (work / "azauth.yaml").write_text(
        "connections:\n  prod: {tenant_id: t, client_id: c, service_connection_id: s}\n"
        "profiles:\n  ci:\n    connections: [prod]\n"
        "    outputs: [{kind: token_file, path: out/here.token}]\n"
    )
    here = load_profile(None, None)
    assert not here.cached
    assert here.profile.outputs[0].path == "out/here.token"
    assert here.source == str(work / "azauth.yaml")


@pytest.mark.parametrize("change", ["changed", "added", "removed", "lower case"])
def test_an_azauth_override_is_in_the_key(
    change: str, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (work / "azauth.toml").write_text(PROD_CI)
    if change in {"changed", "removed"}:
        monkeypatch.setenv("AZAUTH_SETTINGS__CONCURRENCY", "7")
    assert _twice(None, None)[1].cached
    expected = {"changed": 9, "added": 9, "removed": 64, "lower case": 5}[change]
    if change == "removed":
        monkeypatch.delenv("AZAUTH_SETTINGS__CONCURRENCY")
    elif change == "lower case":
        monkeypatch.setenv("azauth_settings__concurrency", "5")
    else:
        monkeypatch.setenv("AZAUTH_SETTINGS__CONCURRENCY", "9")
    after = load_profile(None, None)
    assert not after.cached
    assert after.profile.settings.concurrency == expected


@pytest.mark.parametrize(
    "variable",
    [
        "AZAUTH_EXEC_PROFILE",
        "AZAUTH_FEEDS_DIR",
        "AZAUTH_OIDC_REQUEST_URL",
        "AZAUTH_OIDC_REQUEST_TOKEN",
    ],
)
def test_what_azauth_writes_for_its_children_is_not_in_the_key(
    variable: str, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `run` started by `azauth exec`/`serve` (new values each time) still hits; the bearer of
    the OIDC request endpoint, a secret, is not even hashed into an entry."""
    (work / "azauth.toml").write_text(PROD_CI)
    monkeypatch.setenv(variable, "first-value-4f1c")
    assert _twice(None, None)[1].cached
    monkeypatch.setenv(variable, "second-value-9a7e")
    assert load_profile(None, None).cached
    digest = hashlib.sha256(b"second-value-9a7e").hexdigest()
    entries = _entries(work.parent)
    assert entries
    assert all(digest not in entry.read_text() for entry in entries)


def test_a_variable_in_an_output_path_is_in_the_key(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (work / "azauth.toml").write_text(PROD_CI + toml_output("token_file", path="${OUT}/a.token"))
    monkeypatch.setenv("OUT", "/tmp/first")
    assert _twice(None, None)[1].profile.outputs[0].path == "/tmp/first/a.token"
    monkeypatch.setenv("OUT", "/tmp/second")
    after = load_profile(None, None)
    assert not after.cached
    assert after.profile.outputs[0].path == "/tmp/second/a.token"


def test_home_is_in_the_key_of_a_tilde_path(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "azauth.toml").write_text(PROD_CI + toml_output("token_file", path="~/a.token"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(work / "xdg"))  # discovery no longer reads HOME
    monkeypatch.setenv("HOME", "/tmp/home-one")
    assert _twice(None, None)[1].profile.outputs[0].path == "/tmp/home-one/a.token"
    monkeypatch.setenv("HOME", "/tmp/home-two")
    after = load_profile(None, None)
    assert not after.cached
    assert after.profile.outputs[0].path == "/tmp/home-two/a.token"


def test_a_path_of_another_user_is_never_cached(work: Path, tmp_path: Path) -> None:
    (work / "azauth.toml").write_text(PROD_CI + toml_output("token_file", path="~root/a.token"))
    assert _twice(None, None)[1].cached is False
    assert _entries(tmp_path) == []


def test_the_profile_named_by_option_or_variable_is_in_the_key(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = 'default_profile = "ci"\n' + PROD_CI + toml_profile("other")
    (work / "azauth.toml").write_text(text)
    assert _twice(None, None)[1].profile.name == "ci"
    by_option = load_profile(None, "other")
    assert (by_option.cached, by_option.profile.name) == (False, "other")
    assert load_profile(None, "other").cached
    monkeypatch.setenv("AZAUTH_PROFILE", "other")
    by_variable = load_profile(None, None)
    assert (by_variable.cached, by_variable.profile.name) == (False, "other")


def test_the_flags_are_in_the_key(work: Path) -> None:
    (work / "azauth.toml").write_text(PROD_CI)
    assert _twice(None, None, {"concurrency": None})[1].cached  # unset flags are no input
    flagged = load_profile(None, None, {"concurrency": 3, "fail_fast": True})
    assert not flagged.cached
    assert flagged.profile.settings.concurrency == 3
    assert load_profile(None, None, {"concurrency": 3, "fail_fast": True}).cached
    assert not load_profile(None, None, {"concurrency": 4, "fail_fast": True}).cached


def test_the_config_option_is_in_the_key(work: Path) -> None:
    (work / "a.toml").write_text(PROD_CI + toml_output("token_file", path="out/a.token"))
    (work / "b.toml").write_text(PROD_CI + toml_output("token_file", path="out/b.token"))
    assert _twice("a.toml", None)[1].profile.outputs[0].path == "out/a.token"
    b = load_profile("b.toml", None)
    assert (b.cached, b.profile.outputs[0].path) == (False, "out/b.token")


def test_the_code_identity_follows_the_source_files(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    module = package / "sub" / "m.py"
    module.write_text("x = 1\n")
    (package / "a.py").write_text("")
    first = code_identity(str(package), ("json",))
    assert code_identity(str(package), ("json",)) == first
    info = module.stat()
    os.utime(module, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    touched = code_identity(str(package), ("json",))
    assert touched != first
    module.write_text("x = 22\n")
    os.utime(module, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert code_identity(str(package), ("json",)) != touched  # same time, other size
    (package / "sub" / "new.py").write_text("")
    assert code_identity(str(package), ("json",)) not in (first, touched)
    assert code_identity(str(package), ("json",)) != code_identity(str(package), ("yaml",))
    assert code_identity()[0] == compiled.__version__


def test_the_key_follows_the_code_identity(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "azauth.toml").write_text(PROD_CI)
    assert _twice(None, None)[1].cached
    package = work / "pkg"
    package.mkdir()
    (package / "x.py").write_text("")
    monkeypatch.setattr(compiled, "_AGENT_DIR", str(package))
    monkeypatch.setattr(compiled.code_identity, "__defaults__", (str(package), compiled._PACKAGES))
    assert not load_profile(None, None).cached
    assert load_profile(None, None).cached
    (package / "x.py").write_text("changed = True\n")
    assert not load_profile(None, None).cached


@pytest.mark.parametrize("value", ["0", "false", "Off"])
def test_the_opt_out_turns_the_cache_off(
    value: str, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (work / "azauth.toml").write_text(PROD_CI)
    monkeypatch.setenv("AZAUTH_PROFILE_CACHE", value)
    assert [c.cached for c in _twice(None, None)] == [False, False]
    assert _entries(tmp_path) == []


def test_a_directory_created_at_an_output_path_sends_back_to_validation(work: Path) -> None:
    from agent.exceptions import ConfigError  # noqa: PLC0415

    (work / "azauth.toml").write_text(PROD_CI + toml_output("token_file", path="out/a.token"))
    assert _twice(None, None)[1].cached
    (work / "out" / "a.token").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is an existing directory"):
        load_profile(None, None)


# ------------------------------------------------------------------------------------------------
# Trust


def _cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "azauth" / "profiles"


@pytest.mark.parametrize("how", ["group-writable", "symlinked", "another owner"])
def test_an_untrusted_cache_directory_is_not_used(
    how: str, work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (work / "azauth.toml").write_text(PROD_CI)
    if how == "symlinked":
        real = tmp_path / "elsewhere"
        real.mkdir(mode=0o700)
        (tmp_path / "link").symlink_to(real)
        monkeypatch.setenv("AZAUTH_CACHE_DIR", str(tmp_path / "link" / "azauth"))
    else:
        assert _twice(None, None)[1].cached
        directory = _cache_dir(tmp_path)
        if how == "group-writable":
            directory.chmod(0o770)
        else:
            if os.geteuid() != 0:
                pytest.skip("changing a directory's owner needs root")
            os.chown(directory, 65534, 65534)
    results = _twice(None, None)
    assert [r.cached for r in results] == [False, False]
    assert results[1].profile.name == "ci"
    # The command still works, with nothing on its output about the cache.
    done = azauth("run", "--dry-run", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize(
    "damage", ["readable by others", "renamed", "truncated", "garbage", "edited", "a field lost"]
)
def test_a_damaged_entry_is_ignored_and_rewritten(damage: str, work: Path, tmp_path: Path) -> None:
    (work / "azauth.toml").write_text(PROD_CI + toml_output("token_file", path="out/a.token"))
    load_profile(None, None)
    [entry] = _entries(tmp_path)
    good = entry.read_bytes()
    if damage == "readable by others":
        entry.chmod(0o644)
    elif damage == "renamed":
        (work / "other.toml").write_text(PROD_CI)
        load_profile("other.toml", None)
        [other] = [e for e in _entries(tmp_path) if e != entry]
        other.write_bytes(good)  # the right bytes under the wrong key
        entry.unlink()
        entry = other
        assert not load_profile("other.toml", None).cached
        assert load_profile("other.toml", None).profile.outputs == []
        return
    elif damage == "truncated":
        entry.write_bytes(good[: len(good) // 2])
    elif damage == "edited":  # still JSON, still its key: a flipped byte in a value
        entry.write_bytes(good.replace(b'"path":"out/a.token"', b'"path":"out/b.token"'))
        assert entry.read_bytes() != good
    elif damage == "a field lost":  # still JSON, still its key, a field gone
        entry.write_bytes(good.replace(b'"concurrency":64,', b""))
        assert entry.read_bytes() != good
    else:
        entry.write_bytes(b"\x00\xffnot json")
    assert not load_profile(None, None).cached
    assert entry.stat().st_mode & 0o777 == 0o600
    assert entry.read_bytes() == good
    assert load_profile(None, None).cached


def test_a_profile_with_thousands_of_outputs_is_cached_too(work: Path, tmp_path: Path) -> None:
    """Its entry is larger than a token cache entry may be (256 KiB): still read back."""
    outputs = "".join(
        toml_output("token_file", path=f"out/{index:04}/a-long-enough-name.token", scope=KV)
        for index in range(2500)
    )
    (work / "azauth.toml").write_text(PROD_CI + outputs)
    first, second = _twice(None, None)
    [entry] = _entries(tmp_path)
    assert entry.stat().st_size > 256 * 1024
    assert (first.cached, second.cached) == (False, True)
    assert len(second.profile.outputs) == 2500
    assert _answers(second.profile, {}) == _answers(first.profile, {})


def test_an_entry_too_large_to_be_read_back_is_not_written(
    work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiled, "MAX_ENTRY_BYTES", 4096)
    outputs = "".join(toml_output("token_file", path=f"out/{i}.token") for i in range(100))
    (work / "azauth.toml").write_text(PROD_CI + outputs)
    assert [c.cached for c in _twice(None, None)] == [False, False]
    assert _entries(tmp_path) == []


def test_entries_are_private_and_old_ones_are_swept(work: Path, tmp_path: Path) -> None:
    (work / "azauth.toml").write_text(PROD_CI)
    load_profile(None, None)
    directory = _cache_dir(tmp_path)
    assert directory.stat().st_mode & 0o777 == 0o700
    [entry] = _entries(tmp_path)
    assert entry.stat().st_mode & 0o777 == 0o600
    old = directory / ("a" * 64 + ".json")
    old.write_text("{}")
    stranger = directory / "notes.txt"
    stranger.write_text("kept")
    past = time.time() - compiled.SWEEP_AGE - 60
    os.utime(old, (past, past))
    os.utime(stranger, (past, past))
    assert compiled._sweep(str(directory)) == 0  # swept at the first write already
    os.utime(directory / ".swept", (past, past))
    os.utime(entry, (past, past))
    assert load_profile(None, None).cached  # a hit marks its entry as used
    assert compiled._sweep(str(directory)) == 1
    assert not old.exists()
    assert stranger.exists()
    assert entry.exists()


def test_a_variable_holding_a_secret_in_a_path_is_never_cached(
    work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYSTEM_ACCESSTOKEN", "abcdefghijklmnopqrstuvwxyz0123456789")
    text = PROD_CI + toml_output("token_file", path="/tmp/${SYSTEM_ACCESSTOKEN}/a.token")
    (work / "azauth.toml").write_text(text)
    assert [c.cached for c in _twice(None, None)] == [False, False]
    assert _entries(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# Real processes


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AZAUTH_", "SYSTEM_", "AZURE_"))
    }
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("XDG_CONFIG_HOME", None)
    env["PYTHONPATH"] = str(ROOT)
    return env | extra


def _heavy(
    args: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    done = subprocess.run(
        [
            sys.executable,
            program("entry_point_modules.py"),
            "main",
            "pydantic,pydantic_settings",
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("LOADED="))
    loaded = [m for m in line.removeprefix("LOADED=").split(",") if m]
    return done, loaded


def test_dry_run_prints_the_same_plan_warm_without_pydantic(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    shutil.copy(ROOT / "azauth.toml.example", work / "azauth.toml")
    env = _environment(tmp_path)
    for profile in ("base", "deploy", "packages"):
        cold, cold_modules = _heavy(["run", "--dry-run", "--profile", profile], work, env)
        warm, warm_modules = _heavy(["run", "--dry-run", "--profile", profile], work, env)
        assert cold.returncode == warm.returncode == 0, cold.stderr
        assert cold_modules and not warm_modules
        assert warm.stdout == cold.stdout
        assert warm.stderr.split("LOADED=")[0] == cold.stderr.split("LOADED=")[0]


VALIDATE_PROFILE = (
    'default_profile = "ci"\n'
    + toml_connection(subscription=SUBSCRIPTION)
    + toml_profile()
    + toml_profile("other")
    + toml_output("env_file", "other", path="out/tf.env", preset="terraform")
    + toml_output("pipeline_variables", "other", preset="terraform", secret=True)
)


@pytest.mark.parametrize(
    ("args", "extra"),
    [([], {}), (["--profile", "other"], {}), ([], {"AZAUTH_PROFILE": "other", "TF_BUILD": "True"})],
)
def test_validate_prints_the_same_from_the_cache(
    args: list[str], extra: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    (work / "azauth.toml").write_text(VALIDATE_PROFILE)
    env = _environment(tmp_path, **extra)
    cold, cold_modules = _heavy(["validate", *args], work, env)
    warm, warm_modules = _heavy(["validate", *args], work, env)
    off = azauth("validate", *args, cwd=work, env=env | {"AZAUTH_PROFILE_CACHE": "0"})
    assert cold.returncode == warm.returncode == off.returncode == 0, cold.stderr
    assert cold_modules and not warm_modules
    assert "secret = true does not mask" in off.stderr
    for done in (cold, warm):
        assert done.stdout == off.stdout
        assert done.stderr.split("LOADED=")[0] == off.stderr


def test_validate_ignores_a_damaged_entry_that_is_still_json(tmp_path: Path) -> None:
    """A parseable entry under its own key with its verdict damaged: full validation, no error."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    (work / "azauth.toml").write_text(VALIDATE_PROFILE)
    env = _environment(tmp_path)
    cold = azauth("validate", cwd=work, env=env)
    assert cold.returncode == 0, cold.stderr
    [entry] = _entries(tmp_path)
    good = entry.read_bytes()
    for damaged in (
        good.replace(b'"warnings":[', b'"warning":['),
        good.replace(b'"line":"', b'"line":"forged '),
    ):
        assert damaged != good
        entry.write_bytes(damaged)
        done = azauth("validate", cwd=work, env=env)
        assert (done.returncode, done.stdout, done.stderr) == (0, cold.stdout, cold.stderr)
        assert entry.read_bytes() == good  # rewritten by the full validation


def test_an_invalid_file_is_never_cached(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    (work / "azauth.toml").write_text(PROD_CI + toml_output("token_file", path="out/"))
    env = _environment(tmp_path)
    runs = [azauth("validate", cwd=work, env=env) for _ in range(2)]
    runs += [azauth("run", "--dry-run", cwd=work, env=env) for _ in range(2)]
    assert [r.returncode for r in runs] == [3, 3, 3, 3]
    assert runs[0].stderr == runs[1].stderr
    assert "profiles.ci.outputs[0].path" in runs[0].stderr
    assert _entries(tmp_path) == []


def _normalized(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "<secret>")
    return text


async def test_run_once_writes_the_same_outputs_warm_without_pydantic(
    tmp_path: Path, start_emulator: Any
) -> None:
    emu = await start_emulator((SC, TENANT, CLIENT), (SC2, TENANT, CLIENT))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    profile = (
        toml_connection(subscription=SUBSCRIPTION)
        + toml_connection("other", service_connection=SC2)
        + toml_profile("ci", "prod", "other")
        + toml_output("token_file", connection="prod", path="out/arm.token")
        + toml_output("federated_token_file", connection="prod", path="out/prod.jwt")
        + toml_output("env_file", connection="prod", path="out/tf.env", preset="terraform")
        + toml_output(
            "env_file", connection="other", path="out/id.sh", dialect="sh", preset="azure-identity"
        )
        + toml_output("pipeline_variables", connection="other", variables={"ID": "client_id"})
        + toml_table('[profiles.ci.registries."contoso.azurecr.io"]', connection="prod")
        + toml_output("docker_config", connection="prod", path="out/docker/config.json")
        + toml_table(
            "[[profiles.ci.feeds]]",
            name="shared",
            connection="prod",
            url="https://pkgs.dev.azure.com/contoso/_packaging/shared",
        )
        + toml_output("npmrc", connection="prod", path="out/.npmrc")
        + toml_output("feed_env_file", connection="prod", path="out/feeds.env")
    )
    (work / "azauth.toml").write_text(profile)
    env = _environment(tmp_path, **emu.pipeline_environment())
    outputs = []
    for _ in range(2):
        done, loaded = await _heavy_async(["run", "--once", "-q"], work, env)
        assert done[0] == 0, done[2]
        files = {
            str(p.relative_to(work)): (p.stat().st_mode & 0o777, p.read_text())
            for p in sorted((work / "out").rglob("*"))
            if p.is_file()
        }
        outputs.append((files, done[1], loaded))
        shutil.rmtree(work / "out")
    secrets = [emu.system_access_token, *(t.token for t in emu.issued)]
    (cold_files, cold_out, cold_loaded), (warm_files, warm_out, warm_loaded) = outputs
    assert cold_loaded and not warm_loaded
    assert warm_out == cold_out
    assert {k: (m, _normalized(t, secrets)) for k, (m, t) in warm_files.items()} == {
        k: (m, _normalized(t, secrets)) for k, (m, t) in cold_files.items()
    }
    # No secret in the cache.
    for entry in (tmp_path / "cache").rglob("*"):
        if entry.is_file():
            data = entry.read_text()
            assert all(secret not in data for secret in secrets)
            assert "eyJ" not in data


async def _heavy_async(
    args: list[str], cwd: Path, env: dict[str, str]
) -> tuple[tuple[int, str, str], list[str]]:
    import asyncio  # noqa: PLC0415

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        program("entry_point_modules.py"),
        "main",
        "pydantic,pydantic_settings",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    text = err.decode()
    line = next(ln for ln in text.splitlines() if ln.startswith("LOADED="))
    loaded = [m for m in line.removeprefix("LOADED=").split(",") if m]
    assert process.returncode is not None
    return (process.returncode, out.decode(), text), loaded


async def test_sighup_reload_validates_a_changed_file(tmp_path: Path, start_emulator: Any) -> None:
    emu = await start_emulator((SC, TENANT, CLIENT))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    config = work / "azauth.toml"
    config.write_text(PROD_CI + toml_output("token_file", path="out/a.token", scope=ARM))
    env = _environment(tmp_path, **emu.pipeline_environment())
    assert (await azauth_async("run", "--dry-run", cwd=work, env=env))[0] == 0  # cache warm
    import asyncio  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from tests.support import spawn_azauth, wait_for  # noqa: PLC0415

    process = await spawn_azauth("run", "--watch", "-q", cwd=work, env=env)
    try:
        await wait_for((work / "out" / "a.token").exists, 30)
        config.write_text(PROD_CI + toml_output("token_file", path="out/b.token", scope=ARM))
        process.send_signal(signal.SIGHUP)
        await wait_for((work / "out" / "b.token").exists, 30)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0


def test_discovery_without_home_is_never_cached(
    work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without HOME, discovery reads the password database for ~/.config: not an input we key."""
    (work / "azauth.toml").write_text(PROD_CI)
    monkeypatch.delenv("HOME")
    monkeypatch.delenv("USERPROFILE", raising=False)
    assert [c.cached for c in _twice(None, None)] == [False, False]
    assert _entries(tmp_path) == []
    assert _twice("azauth.toml", None)[1].cached  # --config: no search, no password database
