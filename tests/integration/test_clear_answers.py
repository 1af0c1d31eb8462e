"""Every input gets a clear answer: one line, a documented exit code, never a traceback.

Each class of bad input is a table of variants run through the real CLI (subprocesses) against
a real emulator process (`azauth emulator`), so the exit code and the message are what a user
sees.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli.main import _internal_error
from tests import support
from tests.support import (
    AZAUTH,
    CLIENT,
    PROD_CI_TOKEN_FILE,
    SC,
    TENANT,
    python_program,
    spawn_azauth,
    toml_connection,
)

PROFILE = PROD_CI_TOKEN_FILE

PIPELINE_PROFILE = (
    PROFILE
    + """
[[profiles.ci.outputs]]
kind = "pipeline_variables"
variables = { ARM_TOKEN = "access_token" }
"""
)


def azauth(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 60, shell_suffix: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run azauth; ``shell_suffix`` (``>&-``, ``| head -c1``) runs it through bash."""
    command = [*AZAUTH, *args]
    if shell_suffix:
        line = f'{shlex.join(command)} {shell_suffix}; echo "rc=${{PIPESTATUS[0]}}" >&2'
        return subprocess.run(
            ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    return support.azauth(*args, cwd=cwd, env=env, timeout=timeout)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout
    assert "internal error" not in result.stderr


@pytest.fixture(scope="module")
def emulator_env() -> Iterator[dict[str, str]]:
    """A real `azauth emulator` process; the environment its export lines describe."""
    leaky = ("AZAUTH_", "SYSTEM_", "AZURE_", "ARM_", "AZURESUBSCRIPTION_", "IDENTITY_", "MSI_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(leaky) and not k.upper().endswith("_PROXY") and k != "TF_BUILD"
    }
    proc = subprocess.Popen(  # noqa: S603
        [*AZAUTH, "emulator", "--trust-any-app"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for _ in range(10):
        line = proc.stdout.readline()
        if not line.startswith("export "):
            break
        name, _, value = line[len("export ") :].strip().partition("=")
        env[name] = shlex.split(value)[0]
        if name == "AZURE_AUTHORITY_HOST":
            break
    assert "SYSTEM_OIDCREQUESTURI" in env
    yield env
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture
def work(tmp_path: Path, emulator_env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    (tmp_path / "azauth.toml").write_text(PROFILE)
    env = dict(emulator_env)
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "SSL_CERT_DIR"):
        env.pop(name, None)  # each test sets the one it is about
    env["AZAUTH_CACHE_DIR"] = str(tmp_path / "cache")
    env["HOME"] = str(tmp_path)
    return tmp_path, env


COMMANDS = {
    "run": ("run",),
    "token": ("token", "--no-cache"),
    "status --check": ("status", "--check"),
    "exec": ("exec", "--no-outputs", "--", "true"),
}
# Commands that fail at start without running anything else (serve would otherwise listen).
CA_COMMANDS = {
    **COMMANDS,
    "serve": ("serve",),
    "exec --serve": ("exec", "--no-outputs", "--serve", "--", "true"),
}


# ---------------------------------------------------------------------------------------------
# 1. No traceback: CA bundles


@pytest.mark.parametrize("command", list(CA_COMMANDS))
@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("SSL_CERT_FILE", "{tmp}/gone/ca.pem", "does not exist"),
        ("SSL_CERT_FILE", "{tmp}", "is a directory"),
        ("SSL_CERT_FILE", "{tmp}/azauth.toml", "cannot be loaded"),
        ("REQUESTS_CA_BUNDLE", "{tmp}/gone.pem", "does not exist"),
        ("SSL_CERT_DIR", "{tmp}/azauth.toml", "is not a directory"),
    ],
)
def test_a_bad_ca_bundle_is_a_config_error_naming_the_variable(
    work, command, variable, value, problem
):
    cwd, env = work
    env[variable] = value.format(tmp=cwd)

    result = azauth(*CA_COMMANDS[command], cwd=cwd, env=env, timeout=30)

    no_traceback(result)
    assert result.returncode == 3, result.stderr + result.stdout
    assert f"environment variable {variable}=" in result.stderr + result.stdout
    assert problem in result.stderr + result.stdout


@pytest.mark.parametrize(
    "value", ["{tmp}/gone/ca.pem", "{tmp}", "{tmp}/azauth.toml"], ids=["missing", "dir", "not PEM"]
)
def test_run_loading_the_ca_bundle_ahead_reports_it_as_token_does(work, value):
    """`run` loads the trust store on a thread during start-up; `token` does not: same answer."""
    cwd, env = work
    env["SSL_CERT_FILE"] = value.format(tmp=cwd)

    run = azauth("run", "--once", cwd=cwd, env=env, timeout=30)
    token = azauth("token", "--no-cache", cwd=cwd, env=env, timeout=30)

    no_traceback(run)
    assert run.returncode == token.returncode == 3
    message = token.stderr.splitlines()[-1].removeprefix("azauth: error: ")
    assert message.startswith("environment variable SSL_CERT_FILE=")
    assert f"FAILED: connections.prod: {message}\n" in run.stderr  # the summary line


def test_a_bad_ca_bundle_with_emulate_is_a_config_error_too(work):
    cwd, env = work
    env["SSL_CERT_FILE"] = str(cwd / "deleted-ca.pem")  # a stopped `emulator --tls` left this
    result = azauth("run", "--emulate", cwd=cwd, env=env)
    no_traceback(result)
    assert result.returncode == 3
    assert "SSL_CERT_FILE" in result.stderr


# ---------------------------------------------------------------------------------------------
# 1. No traceback: environment values


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("variable", "decorate"),
    [
        ("SYSTEM_ACCESSTOKEN", lambda v: v + "\n"),
        ("SYSTEM_ACCESSTOKEN", lambda v: v + "\r"),
        ("SYSTEM_ACCESSTOKEN", lambda v: v + "\r\n"),
        ("SYSTEM_ACCESSTOKEN", lambda v: f"  {v}\t"),
        ("SYSTEM_OIDCREQUESTURI", lambda v: v + "\r\n"),
        ("AZURE_AUTHORITY_HOST", lambda v: f" {v}\n"),
    ],
)
def test_surrounding_whitespace_is_trimmed(work, command, variable, decorate):
    cwd, env = work
    env[variable] = decorate(env[variable])
    result = azauth(*COMMANDS[command], cwd=cwd, env=env)
    no_traceback(result)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    ("variable", "decorate", "problem"),
    [
        ("SYSTEM_ACCESSTOKEN", lambda v: v[:5] + "\x01" + v[5:], "control character"),
        ("SYSTEM_ACCESSTOKEN", lambda v: v[:5] + " " + v[5:], "control character or space"),
        ("SYSTEM_ACCESSTOKEN", lambda v: v[:5] + "\r\nX-Evil: 1" + v[5:], "U+000D"),
        ("SYSTEM_ACCESSTOKEN", lambda _: "   ", "is empty"),
        ("SYSTEM_ACCESSTOKEN", lambda v: v[:5] + "\u00e9" + v[5:], "non-ASCII character (U+00E9)"),
        ("SYSTEM_ACCESSTOKEN", lambda v: v + "\u200b", "non-ASCII character (U+200B)"),
        ("SYSTEM_OIDCREQUESTURI", lambda v: v + "\nx", "U+000A"),
        ("SYSTEM_OIDCREQUESTURI", lambda _: "", "is empty"),
        ("AZURE_AUTHORITY_HOST", lambda v: v[:10] + "\x7f" + v[10:], "U+007F"),
    ],
)
def test_an_invalid_environment_value_is_a_config_error_naming_it(
    work, command, variable, decorate, problem
):
    cwd, env = work
    token = env["SYSTEM_ACCESSTOKEN"]
    env[variable] = decorate(env[variable])

    result = azauth(*COMMANDS[command], cwd=cwd, env=env)

    no_traceback(result)
    shown = result.stderr + result.stdout
    assert result.returncode == 3, shown
    assert variable in shown
    assert problem in shown
    assert token not in shown
    assert token[5:] not in shown


def test_the_library_raises_the_documented_config_error():
    from agent import AzurePipelinesCredential
    from agent.exceptions import ConfigError

    good = AzurePipelinesCredential(
        tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC,
        system_access_token="abc\r\n", oidc_request_uri=" https://x.example/oidc\n",
    )  # fmt: skip
    assert good._system_access_token == "abc"
    with pytest.raises(ConfigError, match="system_access_token holds a control") as caught:
        AzurePipelinesCredential(
            tenant_id=TENANT, client_id=CLIENT, service_connection_id=SC,
            system_access_token="abc\ndef",
        )  # fmt: skip
    assert isinstance(caught.value, ValueError)  # what azure-identity raises for bad arguments
    assert "def" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# 1. No traceback: numbers on the command line (usage, 2) and in the file (config, 3)


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--refresh-margin", "inf"),
        ("run", "--refresh-margin", "nan"),
        ("run", "--refresh-margin", "-1"),
        ("run", "--concurrency", "0"),
        ("run", "--concurrency", "1e3"),
        ("exec", "--refresh-margin", "nan", "--", "true"),
        ("serve", "--port", "70000"),
        ("serve", "--port", "-1"),
        ("serve", "--max-requests", "0"),
        ("emulator", "--port", "70000"),
        ("emulator", "--latency", "inf"),
        ("emulator", "--oidc-lifetime", "nan"),
        ("emulator", "--token-lifetime", "0"),
    ],
)
def test_bad_numbers_on_the_command_line_are_usage_errors(work, argv):
    cwd, env = work
    result = azauth(*argv, cwd=cwd, env=env, timeout=20)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert f"argument {argv[1]}" in result.stderr


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("refresh_margin = inf", "file"),
        ("refresh_margin = nan", "file"),
        ("retry_deadline = inf", "file"),
        ("refresh_margin = 1e400", "file"),
        ("AZAUTH_SETTINGS__REFRESH_MARGIN=nan", "env"),
        ("AZAUTH_SETTINGS__RETRY_DEADLINE=inf", "env"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_non_finite_numbers_in_the_settings_are_config_errors(work, setting, where, command):
    cwd, env = work
    if where == "file":
        (cwd / "azauth.toml").write_text(f"[settings]\n{setting}\n" + PROFILE)
    else:
        name, _, value = setting.partition("=")
        env[name] = value
    result = azauth(command, cwd=cwd, env=env)
    no_traceback(result)
    assert result.returncode == 3, result.stderr
    assert "settings." in result.stderr


# ---------------------------------------------------------------------------------------------
# 1. No traceback: YAML and TOML that explode


def _alias_bomb() -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
        previous = name
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bomb.yaml", _alias_bomb(), "more than 10000 values"),
        ("self.yaml", "a: &a [*a]\n", "recursive"),
        ("self-map.yaml", "a: &a {b: *a}\n", "recursive"),
        ("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n", "levels deep"),
        ("deep-block.yaml", "".join("  " * i + f"k{i}:\n" for i in range(200)) + "\n", "deep"),
        ("deep.toml", "a = " + "[" * 5000 + "]" * 5000 + "\n", "levels deep"),
        ("deep-inline.toml", "a = " + "{b = " * 40 + "1" + "}" * 40 + "\n", "levels deep"),
    ],
)
def test_explosive_files_are_bounded_config_errors(work, name, text, problem):
    cwd, env = work
    (cwd / name).write_text(text)
    started = time.monotonic()
    result = azauth("validate", "--config", name, cwd=cwd, env=env, timeout=30)
    assert time.monotonic() - started < 10
    no_traceback(result)
    assert result.returncode == 3, result.stderr
    assert problem in result.stderr
    assert name in result.stderr


def test_a_file_with_ordinary_aliases_still_loads(work):
    cwd, env = work
    (cwd / "azauth.yaml").write_text(
        f"""
ids: &ids {{tenant_id: "{TENANT}", client_id: "{CLIENT}"}}
connections:
  prod: {{<<: *ids, service_connection_id: "{SC}"}}
profiles:
  ci: {{connections: [prod]}}
""".replace("ids: &ids", "x-ids: &ids")
    )
    (cwd / "azauth.toml").unlink()
    result = azauth("validate", cwd=cwd, env=env)
    # x-ids is an unknown key: the file is parsed (aliases resolved) and then checked
    assert result.returncode == 3
    assert "x-ids" in result.stderr
    assert "levels deep" not in result.stderr


# ---------------------------------------------------------------------------------------------
# 1. No traceback: closed and broken standard streams


@pytest.mark.parametrize(
    ("argv", "suffix", "code", "message"),
    [
        (("profiles",), ">&-", 2, "standard output is closed"),
        (("token",), ">&-", 2, "standard output is closed"),
        (("schema",), ">&-", 2, "standard output is closed"),
        (("env", "--profile", "ci"), ">&-", 2, "standard output is closed"),
        (("git-credential", "get"), "<&-", 2, "no request on standard input"),
        (("validate",), ">&-", 0, "OK"),
        (("validate",), "<&-", 0, "OK"),
    ],
)
def test_closed_standard_streams(work, argv, suffix, code, message):
    cwd, env = work
    result = azauth(*argv, cwd=cwd, env=env, shell_suffix=suffix)
    no_traceback(result)
    assert f"rc={code}" in result.stderr
    assert message in result.stderr


def test_run_with_pipeline_variables_refuses_a_closed_stdout_before_any_work(work):
    cwd, env = work
    (cwd / "azauth.toml").write_text(PIPELINE_PROFILE)
    result = azauth("run", cwd=cwd, env=env, shell_suffix=">&-")
    no_traceback(result)
    assert "rc=2" in result.stderr
    assert "##vso" in result.stderr
    assert not (cwd / "out").exists()


def test_run_with_stderr_closed_keeps_logs_off_stdout(work):
    cwd, env = work
    (cwd / "azauth.toml").write_text(PIPELINE_PROFILE)
    result = azauth("run", "--log-format", "json", cwd=cwd, env=env, shell_suffix="2>&-")
    assert result.stdout.splitlines()
    assert all(line.startswith("##vso[") for line in result.stdout.splitlines())
    assert (cwd / "out/arm.token").exists()


@pytest.mark.parametrize(
    "argv", [("schema",), ("run", "--emulate"), ("emulator", "--help"), ("--help",)]
)
def test_a_reader_that_goes_away_ends_quietly(work, argv):
    cwd, env = work
    (cwd / "azauth.toml").write_text(PIPELINE_PROFILE)
    result = azauth(*argv, cwd=cwd, env=env, shell_suffix="2>&1 | head -c1")
    assert len(result.stdout) == 1
    assert "Traceback" not in result.stderr
    assert "BrokenPipe" not in result.stderr
    code = int(result.stderr.strip().rsplit("rc=", 1)[1])
    assert code in (0, 141)


def test_the_last_resort_handler_prints_one_line_and_the_traceback_only_at_vv(capsys):
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    try:
        raise RuntimeError(f"unexpected\nstate {jwt}")
    except RuntimeError as exc:
        error = exc
    assert _internal_error(error, verbose=0) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("azauth: internal error: RuntimeError: unexpected state ")
    assert "(please report" in err
    assert jwt not in err
    assert "Traceback" not in err

    assert _internal_error(error, verbose=2) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert jwt not in err


# ---------------------------------------------------------------------------------------------
# 2. One meaning per exit code: the job environment is CONFIG (3), with a hint


@pytest.mark.parametrize(
    "command",
    [*COMMANDS, "serve", "git-credential"],
)
@pytest.mark.parametrize(
    ("missing", "hint"),
    [
        ("SYSTEM_OIDCREQUESTURI", "referenced in the stage"),
        ("SYSTEM_ACCESSTOKEN", "$(System.AccessToken)"),
    ],
)
def test_an_environment_that_is_not_a_pipeline_job_is_exit_3_with_a_hint(
    work, command, missing, hint
):
    cwd, env = work
    del env[missing]
    argv = {"serve": ("serve",), "git-credential": ("git-credential", "get")}.get(
        command, COMMANDS.get(command, ())
    )
    result = subprocess.run(
        [*AZAUTH, *argv],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=30, check=False,
        input="protocol=https\nhost=dev.azure.com\n\n",
    )  # fmt: skip
    shown = result.stderr + result.stdout
    no_traceback(result)
    assert result.returncode == 3, shown
    assert missing in shown
    assert hint in shown
    assert "--emulate" in shown


@pytest.mark.parametrize(
    "argv",
    [
        ("token", "--scope", "nope"),
        ("token", "--scope", "https://vault.azure.net"),
        ("token", "--scope", "https://management.azure.com/.default", "--scope", "x y/.default"),
        ("token", "--output", "yaml"),
        ("token", "--connection", "nope"),
    ],
)
def test_arguments_are_checked_before_any_network_call(work, argv):
    cwd, env = work
    env["SYSTEM_OIDCREQUESTURI"] = "https://192.0.2.1/unreachable/oidctoken"  # never contacted
    started = time.monotonic()
    result = azauth(*argv, cwd=cwd, env=env, timeout=30)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------------------------------
# 3. run --dry-run contacts nothing and writes nothing


def test_dry_run_prints_the_plan_without_contacting_anything(work):
    cwd, env = work
    (cwd / "azauth.toml").write_text(PIPELINE_PROFILE)
    env["SYSTEM_OIDCREQUESTURI"] = "https://192.0.2.1/unreachable/oidctoken"  # never contacted
    del env["SYSTEM_ACCESSTOKEN"]
    started = time.monotonic()

    result = azauth("run", "--dry-run", cwd=cwd, env=env)

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert not (cwd / "out").exists()
    assert f"write {cwd}/out/arm.token (0600)" in result.stdout
    assert "acquire https://management.azure.com/.default" in result.stdout
    assert "ARM_TOKEN=*** (secret)" in result.stdout
    assert "##vso[" not in result.stdout.replace("##vso[task.setvariable] lines", "")


# ---------------------------------------------------------------------------------------------
# 4. Outputs land where they must


def test_exec_never_prints_pipeline_variables_on_the_commands_stdout(work):
    cwd, env = work
    (cwd / "azauth.toml").write_text(PIPELINE_PROFILE)
    result = azauth("exec", "--", sys.executable, "-c", "print('{}')", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "{}\n"
    assert (cwd / "out/arm.token").exists()  # the other outputs are still delivered


SHOW_ENV = python_program("show_variables.py")


@pytest.mark.parametrize(
    ("preset", "competing", "kept"),
    [
        ("terraform", {"ARM_OIDC_TOKEN": "eyJhbGciOiJSUzI1NiJ9.e30.x"}, {}),
        ("terraform", {"ARM_CLIENT_SECRET": "s", "ARM_CLIENT_CERTIFICATE_PATH": "/c.pfx"}, {}),
        ("terraform", {"ARM_USE_MSI": "true", "ARM_USE_CLI": "true", "ARM_MSI_ENDPOINT": "x"}, {}),
        ("terraform", {"ARM_CLIENT_ID_FILE_PATH": "/id", "ARM_ENVIRONMENT": "china"}, {}),
        ("pulumi", {"ARM_OIDC_REQUEST_TOKEN": "t", "ARM_OIDC_REQUEST_URL": "u"}, {"TF_LOG": "1"}),
        ("azure-identity", {"AZURE_CLIENT_SECRET": "s", "AZURE_USERNAME": "u"}, {"ARM_USE_MSI": "1"}),
    ],
)  # fmt: skip
def test_exec_removes_what_competes_with_the_preset(work, preset, competing, kept):
    cwd, env = work
    env.update(competing)
    env.update(kept)
    names = [*competing, *kept]

    result = azauth(
        "exec", "--preset", preset, "--", *SHOW_ENV, *names,
        cwd=cwd, env=env,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    import json

    seen = json.loads(result.stdout)
    assert seen == dict.fromkeys(competing) | kept


@pytest.mark.parametrize(
    ("preset", "ambient", "shell"),
    [
        ("terraform", "ARM_OIDC_TOKEN", "bash"),
        ("terraform", "ARM_CLIENT_SECRET", "dash"),
        ("pulumi", "ARM_USE_MSI", "bash"),
        ("azure-identity", "AZURE_CLIENT_SECRET", "bash"),
        ("azure-identity", "AZURE_TOKEN_CREDENTIALS", "dash"),
    ],
)
def test_sh_env_files_unset_what_competes(work, preset, ambient, shell):
    import shutil

    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    cwd, env = work
    (cwd / "azauth.toml").write_text(
        PROFILE
        + f'\n[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/p.sh"\ndialect = "sh"\n'
        f'preset = "{preset}"\n'
    )
    result = azauth("run", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    read = subprocess.run(
        [shell, "-c", f'. ./out/p.sh; echo "${{{ambient}-unset}}"'],
        cwd=cwd, env=env | {ambient: "from-an-earlier-step"}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert read.stdout == "unset\n"


@pytest.mark.parametrize("dialect", ["dotenv", "docker", "systemd"])
def test_run_warns_once_per_competing_variable_a_file_cannot_unset(work, dialect):
    cwd, env = work
    (cwd / "azauth.toml").write_text(
        PROFILE
        + f'\n[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/a.env"\ndialect = "{dialect}"\n'
        'preset = "terraform"\n'
        '\n[[profiles.ci.outputs]]\nkind = "env_file"\npath = "out/b.env"\ndialect = "dotenv"\n'
        'preset = "terraform"\n'
    )
    env.update({"ARM_OIDC_TOKEN": "x" * 40, "ARM_CLIENT_SECRET": "s", "ARM_CLIENT_ID": "ok"})
    env["TF_BUILD"] = "True"
    result = azauth("run", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "competing_variable" in line]
    assert len(warnings) == 2
    assert {w.split("variable=")[1].split()[0] for w in warnings} == {
        "ARM_OIDC_TOKEN",
        "ARM_CLIENT_SECRET",
    }
    assert all(w.startswith("##[warning]azauth: competing_variable ") for w in warnings)
    assert "x" * 40 not in result.stderr


# ---------------------------------------------------------------------------------------------
# 5. Pipeline-native output under TF_BUILD

# The Azure Pipelines log: a formatting command starts the line; "##vso[" anywhere is a command.
FORMAT_LINE = re.compile(r"^##\[(warning|error|debug|group|endgroup)\]")
PLAIN_LINE = re.compile(r"^azauth: \S[^\r\n]*$")


def check_pipeline_log(stderr: str) -> list[str]:
    """Every line is plain or starts with one formatting command; none carries a ##vso."""
    lines = stderr.splitlines()
    for line in lines:
        assert "##vso[" not in line, line
        body = FORMAT_LINE.sub("", line)
        assert "##" not in body, line
    return lines


@pytest.mark.parametrize("verbosity", [(), ("-v",), ("-vv",), ("-q",)])
def test_tf_build_selects_the_azure_pipelines_log_format(work, verbosity):
    cwd, env = work
    env["TF_BUILD"] = "True"
    result = azauth("run", *verbosity, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    lines = check_pipeline_log(result.stderr)
    assert not any(line.startswith("{") for line in lines)  # no JSON
    if verbosity == ("-q",):
        assert lines == []
        return
    start, end = lines.index("##[group]azauth summary"), lines.index("##[endgroup]")
    assert lines[start + 1].startswith("CONNECTION  SCOPE")
    assert end == len(lines) - 1
    logs = lines[:start]
    if not verbosity:
        assert logs == []  # warnings and errors only
    else:
        assert any(line.startswith("azauth: token_acquired connection=prod ") for line in logs)
        for line in logs:
            body = line.removeprefix("##[debug]")
            assert PLAIN_LINE.match(body) or line.startswith("##[debug]"), line


def test_json_stays_available_under_tf_build(work):
    cwd, env = work
    env["TF_BUILD"] = "True"
    result = azauth("run", "-v", "--log-format", "json", cwd=cwd, env=env)
    assert result.returncode == 0
    assert result.stderr.splitlines()[0].startswith("{")
    assert "##[group]" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "variables", "first"),
    [
        (("run",), {"SYSTEM_ACCESSTOKEN": ""}, "##[error]azauth: "),
        (("validate", "--config", "missing.toml"), {}, "##[error]azauth: error: "),
        (("token", "--scope", "##vso[task.setvariable variable=X]y"), {}, "##[error]azauth: error: "),
    ],
)  # fmt: skip
def test_errors_are_pipeline_errors_and_never_commands(work, argv, variables, first):
    cwd, env = work
    env["TF_BUILD"] = "True"
    env.update(variables)
    result = azauth(*argv, cwd=cwd, env=env)
    assert result.returncode in (2, 3)
    check_pipeline_log(result.stderr)
    assert any(line.startswith(first) for line in result.stderr.splitlines())


def test_pipelines_renderer_lines_follow_the_grammar():
    from agent.logs import AzurePipelinesRenderer

    render = AzurePipelinesRenderer()
    cases = [
        ("warning", "competing_variable", {"variable": "ARM_OIDC_TOKEN"},
            "##[warning]azauth: competing_variable variable=ARM_OIDC_TOKEN"),
        ("error", "refresh_failed", {"error": "a b\nc"},
            '##[error]azauth: refresh_failed error="a b\\nc"'),
        ("info", "token_acquired", {"scope": "https://x/.default", "expires_in": 10},
            "azauth: token_acquired scope=https://x/.default expires_in=10"),
        ("debug", "x", {"v": "##vso[task.setvariable variable=A]b"},
            '##[debug]azauth: x v="# #vso[task.setvariable variable=A]b"'),
        ("critical", "boom", {}, "##[error]azauth: boom"),
    ]  # fmt: skip
    for level, event, extra, expected in cases:
        line = render(None, level, {"event": event, "level": level, **extra})
        assert line == expected
        check_pipeline_log(line)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AZURESUBSCRIPTION_TENANT_ID", TENANT + "\r"),
        ("AZURESUBSCRIPTION_CLIENT_ID", f" {CLIENT}\n"),
        ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", SC + "\r\n"),
    ],
)
def test_ids_from_azuresubscription_variables_are_trimmed(work, variable, value):
    cwd, env = work
    (cwd / "azauth.toml").unlink()
    env.update(
        {
            "AZURESUBSCRIPTION_TENANT_ID": TENANT,
            "AZURESUBSCRIPTION_CLIENT_ID": CLIENT,
            "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": SC,
            variable: value,
        }
    )
    result = azauth("token", "--no-cache", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2  # a JWT


@pytest.mark.parametrize("value", ["ci\n", " ci", "ci\r\n"])
def test_the_profile_named_in_the_environment_is_trimmed(work, value):
    cwd, env = work
    env["AZAUTH_PROFILE"] = value
    result = azauth("validate", cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert "profile 'ci'" in result.stderr


@pytest.mark.parametrize("command", [("run",), ("token", "--no-cache"), ("status", "--check")])
async def test_a_connection_not_referenced_in_the_stage_is_exit_3_with_the_hint(
    emulator, tmp_path, command
):
    import asyncio

    emulator.add_service_connection(SC, referenced=False)
    (tmp_path / "azauth.toml").write_text(PROFILE)
    proc = await spawn_azauth(*command, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AZAUTH_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    shown = out.decode() + err.decode()
    assert proc.returncode == 3, shown
    assert "no explicit reference" in shown
    assert "referenced in the same stage" in shown
    assert "Traceback" not in shown


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SYSTEM_ACCESSTOKEN", "abc\x01def"), ("SYSTEM_OIDCREQUESTURI", "https://x y/oidc")],
)
def test_status_shows_the_problem_run_would_fail_on(work, variable, value):
    cwd, env = work
    env[variable] = value
    result = azauth("status", cwd=cwd, env=env)
    assert result.returncode == 0  # status without --check reports, it does not fail
    assert f"problem: environment variable {variable}" in result.stdout
    assert "def" not in result.stdout.split("problem:")[1]


def test_a_trimmed_token_is_served_warm_from_the_cache(work):
    """The fast path trims like the full command: a CRLF token still hits the cache."""
    cwd, env = work
    env["SYSTEM_ACCESSTOKEN"] += "\r\n"
    first = azauth("token", cwd=cwd, env=env)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "agent", "token"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 0
    assert again.stdout == first.stdout
    assert "aiohttp" not in again.stderr  # answered by the warm path, not a new request


# ================================================================================================
# Review of issue 10: inputs that still fell through to Python, or got another exit code

LONG_NAME = "a" * 300  # past NAME_MAX (255): every file system call fails with ENAMETOOLONG


# ------------------------------------------------------------------------------------------------
# docker-credential-azauth with closed standard streams: the same guard as `azauth`


def docker_helper(
    action: str, suffix: str, *, cwd: Path, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    code = "from agent._entry import docker_credential_main; docker_credential_main()"
    line = f"{sys.executable} -c '{code}' {action} {suffix}"
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("action", "suffix", "code"),
    [
        ("get", "<&-", 1),  # no request: "no credentials server URL"
        ("get", ">&-", 1),  # a registry the profile does not serve: nowhere to say so
        ("list", ">&-", 0),
        ("list", "<&-", 0),
        ("erase", "<&-", 1),  # no request: "no credentials server URL"
        ("store", "<&-", 1),  # an empty store request is refused as the protocol says
    ],
)
def test_the_docker_helper_survives_closed_streams(work, action, suffix, code):
    cwd, env = work

    result = docker_helper(action, suffix, cwd=cwd, env=env, stdin="nope.example.com")

    no_traceback(result)
    assert result.returncode == code, result.stderr + result.stdout


def test_the_docker_helper_turns_a_bug_into_one_line(monkeypatch, capsys):
    from agent.cli import docker_credential

    def broken(data: bytes, env: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setitem(docker_credential._OPERATIONS, "list", broken)

    assert docker_credential.main(["list"]) == 1
    err = capsys.readouterr().err
    assert (
        err.strip()
        == "docker-credential-azauth: internal error: RuntimeError: boom (please report)"
    )


# ------------------------------------------------------------------------------------------------
# Paths the operating system refuses: a name too long, a working directory that is gone


@pytest.mark.parametrize(
    ("args", "variables", "named"),
    [
        (("--config", f"{LONG_NAME}.toml"), {}, "--config"),
        ((), {"AZAUTH_CONFIG": f"{LONG_NAME}.toml"}, "AZAUTH_CONFIG"),
        (("--config", f"{LONG_NAME}/azauth.toml"), {}, "--config"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run", "token", "status", "profiles", "env"])
def test_an_unusable_config_path_is_a_config_error_naming_where_it_came_from(
    work,
    command,
    args,
    variables,
    named,
):
    cwd, env = work
    env.update(variables)

    result = azauth(command, *args, cwd=cwd, env=env)

    no_traceback(result)
    assert result.returncode == 3, result.stderr
    assert "cannot use this path" in result.stderr
    assert named in result.stderr


@pytest.mark.parametrize("variable", ["XDG_CONFIG_HOME", "HOME"])
@pytest.mark.parametrize("command", ["validate", "token", "status"])
def test_a_search_directory_with_a_name_too_long_is_skipped(work, tmp_path, variable, command):
    _, env = work
    empty = tmp_path / "empty"
    empty.mkdir()
    env.pop("XDG_CONFIG_HOME", None)
    env[variable] = f"/{LONG_NAME}"

    result = azauth(command, cwd=empty, env=env)

    no_traceback(result)
    assert result.returncode == 3, result.stderr
    assert "no profile file found" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("validate",),
        ("run", "--emulate"),
        ("token", "--no-cache"),
        ("status",),
        ("profiles",),
        ("exec", "--", "true"),
        ("serve",),
    ],
)
def test_a_deleted_working_directory_is_a_config_error(work, argv):
    cwd, env = work
    gone = cwd / "gone"
    gone.mkdir()
    args = " ".join(argv)
    line = (
        f"cd {gone} && rmdir {gone} && "
        f"{sys.executable} -m agent {args} --config {cwd / 'azauth.toml'}"
    )
    if argv[0] == "exec":
        line = f"cd {gone} && rmdir {gone} && {sys.executable} -m agent exec --config "
        line += f"{cwd / 'azauth.toml'} -- true"
    result = subprocess.run(
        ["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60, check=False
    )

    no_traceback(result)
    assert result.returncode == 3, result.stderr
    assert "working directory" in result.stderr


# ------------------------------------------------------------------------------------------------
# SYSTEM_OIDCREQUESTURI that is not a URL azauth may send the system token to: CONFIG (3)


@pytest.mark.parametrize("command", [*COMMANDS, "serve"])
@pytest.mark.parametrize(
    ("decorate", "problem"),
    [
        (lambda v: v.replace("http", "ftp", 1), "is not an http(s) URL"),
        (lambda _: "relative/oidctoken", "is not an absolute URL"),
        (lambda _: "http://[::1/oidctoken", "is not a URL"),
        (lambda _: "http://127.0.0.1:99999/oidctoken", "is not a URL"),
        (lambda _: "http://10.1.2.3/oidctoken", "plain http"),
        (lambda _: "https:///oidctoken", "has no host"),
        (lambda v: v.replace("://", "://user:hunter22@", 1), "user name or password"),
    ],
)
def test_an_unusable_oidc_request_uri_is_a_config_error_naming_it(
    work,
    command,
    decorate,
    problem,
):
    cwd, env = work
    env["SYSTEM_OIDCREQUESTURI"] = decorate(env["SYSTEM_OIDCREQUESTURI"])
    argv = ("serve", "--max-requests", "1") if command == "serve" else COMMANDS[command]

    result = azauth(*argv, cwd=cwd, env=env)

    no_traceback(result)
    shown = result.stderr + result.stdout
    assert result.returncode == 3, shown
    assert "SYSTEM_OIDCREQUESTURI" in shown
    assert problem in shown
    assert "hunter22" not in shown


@pytest.mark.parametrize(
    "uri",
    ["ftp://x/y", "http://10.0.0.1/x", "http://[::1", "https://h:70000/x", "https://u:p@h/x"],
)
def test_the_library_refuses_the_same_uris_with_config_error(uri):
    from agent import AzurePipelinesCredential
    from agent.exceptions import ConfigError

    with pytest.raises(ConfigError, match="oidc_request_uri") as caught:
        AzurePipelinesCredential(
            tenant_id="t",
            client_id="c",
            service_connection_id="s",
            system_access_token="x",
            oidc_request_uri=uri,
        )
    assert ":p@" not in str(caught.value)


# Text from the profile or the command line in a pipeline log: no run of "#" and no carriage
# return may rebuild a "##vso[" (the agent splits lines at \r too) in any format or command.
HOSTILE = [
    "###vso[task.setvariable variable=EVIL]1",
    "x####vso[task.complete result=Failed]x",
    "a\r##vso[task.setvariable variable=EVIL]1",
]


def hostile_profile(text: str) -> str:
    path = text.replace("\r", "")  # paths may not hold control characters
    description = text.replace("\r", "\\r")
    return f"""
{toml_connection("prod")}
[profiles.ci]
description = "{description}"
connections = ["prod"]

[[profiles.ci.outputs]]
kind = "token_file"
path = "out/{path}"
"""


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("run", "--profile", "{text}"), 3),
        (("validate", "--profile", "{text}"), 3),
        (("token", "--connection", "{text}"), 2),
        (("run", "--dry-run"), 0),
        (("run",), 0),
        (("run", "-v", "--log-format", "json"), 0),
        (("run", "-v", "--log-format", "console"), 0),
        (("profiles",), 0),
        (("status",), 0),
        (("validate",), 0),
    ],
)
def test_no_input_rebuilds_a_logging_command_under_tf_build(work, text, argv, code):
    cwd, env = work
    (cwd / "azauth.toml").write_text(hostile_profile(text))
    env["TF_BUILD"] = "True"

    result = azauth(*(arg.format(text=text) for arg in argv), cwd=cwd, env=env)

    no_traceback(result)
    assert result.returncode == code, result.stderr
    check_pipeline_log(result.stdout)
    check_pipeline_log(result.stderr)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("##vso[x]", "# #vso[x]"),
        ("###vso[x]", "# # #vso[x]"),
        ("#####", "# # # # #"),
        ("a\r##[error]b", "a\\r# #[error]b"),
        ("# one # two #", "# one # two #"),
        ("line1\nline2", "line1\nline2"),
    ],
)
def test_neutralize_leaves_no_double_hash_and_no_carriage_return(text, expected):
    from agent._pipelines import neutralize

    assert neutralize(text) == expected
    assert "##" not in neutralize(text)
    assert "\r" not in neutralize(text)
