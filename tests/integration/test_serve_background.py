"""`azauth serve --background` / `--stop`: one server for the whole job, step after step.

Each step is its own process, as in a pipeline: step 1 starts the server and prints `##vso`
variables; step 2 is given only those variables (as a later step maps them with `env:`) and
gets tokens through azure-identity and both OIDC request shapes; step 3 starts it again and is
handed the same server; step 4 stops it. A last test lets one reach its maximum lifetime.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests import support
from tests.support import CLIENT, SC, SC2, SUBSCRIPTION, toml_connection, toml_profile

PROFILE = toml_connection(subscription=SUBSCRIPTION) + toml_profile()

SET_VARIABLE = re.compile(r"^##vso\[task\.setvariable variable=([A-Z_]+)(;issecret=true)?\](.*)$")

pytestmark = pytest.mark.timeout(120)


def azauth(cwd, *args, env=None):
    return support.azauth(*args, cwd=cwd, env=env, timeout=90)


def parse(stdout):
    variables, secret, masked = {}, set(), []
    for line in stdout.splitlines():
        if line.startswith("##vso[task.setsecret]"):
            masked.append(line.removeprefix("##vso[task.setsecret]"))
            continue
        match = SET_VARIABLE.match(line)
        assert match, line
        variables[match[1]] = match[3]
        if match[2]:
            secret.add(match[1])
    return variables, secret, masked


def wait_gone(pid, path, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            alive = b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            alive = False
        if not alive and not path.exists():
            return True
        time.sleep(0.1)
    return False


def test_step_to_step(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    state = tmp_path / "agent-temp" / "azauth" / "serve-ci.json"
    start = (
        "serve",
        "--background",
        "--emulate",
        "--preset",
        "terraform",
        "--state-file",
        str(state),
    )

    step1 = azauth(tmp_path, *start)
    assert step1.returncode == 0, step1.stderr
    variables, secret, masked = parse(step1.stdout)
    assert secret == {
        "IDENTITY_HEADER",
        "MSI_SECRET",
        "AZAUTH_OIDC_REQUEST_TOKEN",
        "ARM_OIDC_REQUEST_TOKEN",
    }
    assert set(masked) == {variables["IDENTITY_HEADER"], variables["ARM_OIDC_REQUEST_TOKEN"]}
    assert "ARM_OIDC_TOKEN_FILE_PATH" not in variables
    assert variables["ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID"] == SC
    record = json.loads(state.read_text())
    pid = record["pid"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    assert f"started (pid {pid})" in step1.stderr

    # A later step: a fresh process that has only the variables (and PATH/HOME).
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **variables}
    step2 = subprocess.run(
        support.python_program("later_pipeline_step.py"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert step2.returncode == 0, step2.stderr
    assert step2.stdout.splitlines() == [
        CLIENT,
        "api://AzureADTokenExchange",
        "api://AzureADTokenExchange",
    ]

    step3 = azauth(tmp_path, *start)
    assert step3.returncode == 0, step3.stderr
    again, _, _ = parse(step3.stdout)
    assert again == variables
    assert f"already running (pid {pid}), reused" in step3.stderr

    step4 = azauth(tmp_path, "serve", "--stop", "--state-file", str(state))
    assert step4.returncode == 0, step4.stderr
    assert wait_gone(pid, state)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(variables["IDENTITY_ENDPOINT"], timeout=2)

    log = state.with_suffix(".log").read_text()
    for name in secret:
        assert variables[name] not in log
        assert variables[name] not in step1.stderr + step3.stderr + step4.stderr

    step5 = azauth(tmp_path, "serve", "--stop", "--state-file", str(state))
    assert step5.returncode == 0
    assert "no server was running" in step5.stderr


def test_default_state_file_is_under_the_agent_temp_directory(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    agent_temp = tmp_path / "_temp"
    agent_temp.mkdir()
    env = {**os.environ, "AGENT_TEMPDIRECTORY": str(agent_temp)}

    started = azauth(tmp_path, "serve", "--background", "--emulate", env=env)
    assert started.returncode == 0, started.stderr
    state = agent_temp / "azauth" / "serve-ci.json"
    pid = json.loads(state.read_text())["pid"]
    stopped = azauth(tmp_path, "serve", "--stop", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert wait_gone(pid, state)


def test_max_lifetime_ends_the_server(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    state = tmp_path / "state" / "serve.json"

    started = azauth(
        tmp_path,
        "serve",
        "--background",
        "--emulate",
        "--max-lifetime",
        "1.5",
        "--state-file",
        str(state),
    )
    assert started.returncode == 0, started.stderr
    pid = json.loads(state.read_text())["pid"]
    assert wait_gone(pid, state, seconds=15)


def test_a_dead_server_is_not_reused(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    state = tmp_path / "state" / "serve.json"
    state.parent.mkdir(mode=0o700)
    state.write_text(
        json.dumps(
            {
                "pid": 999999,
                "url": "http://127.0.0.1:9",
                "profile": "ci",
                "started": 0,
                "deadline": 0,
                "variables": {"IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token"},
            }
        )
    )

    started = azauth(tmp_path, "serve", "--background", "--emulate", "--state-file", str(state))
    assert started.returncode == 0, started.stderr
    variables, _, _ = parse(started.stdout)
    assert variables["IDENTITY_ENDPOINT"] != "http://127.0.0.1:9/msi/token"
    assert "started" in started.stderr
    azauth(tmp_path, "serve", "--stop", "--state-file", str(state))


def test_preset_needs_a_connection_before_anything_starts(tmp_path):
    (tmp_path / "azauth.toml").write_text(
        PROFILE.replace('connections = ["prod"]', 'connections = ["prod", "other"]')
        + toml_connection("other", service_connection=SC2)
    )
    state = tmp_path / "state" / "serve.json"

    result = azauth(
        tmp_path,
        "serve",
        "--background",
        "--emulate",
        "--preset",
        "terraform",
        "--state-file",
        str(state),
    )

    assert result.returncode == 2
    assert "--connection" in result.stderr
    assert not state.exists()


def test_a_state_directory_others_can_write_is_refused(tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILE)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)

    result = azauth(
        tmp_path, "serve", "--background", "--emulate", "--state-file", str(shared / "serve.json")
    )

    assert result.returncode == 2
    assert "writable by no one else (choose another with --state-file)" in result.stderr
    assert not (shared / "serve.json").exists()
