"""The README's examples are real: its commands exist and its pipeline example profile runs."""

from __future__ import annotations

import re

import yaml

from tests.support import ROOT, azauth

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_readme_opens_with_the_two_commands_ci_runs():
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    first = blocks[0]
    assert "azauth run --emulate" in first
    test_command = next(line for line in first.splitlines() if "pytest" in line)
    assert test_command in (ROOT / ".ci/run").read_text()


def test_pipeline_example_profile_runs_against_the_emulator(tmp_path):
    text = section("An Azure Pipelines job with several connections")
    profile = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    pipeline = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    steps = yaml.safe_load(pipeline)["jobs"][0]["steps"]
    assert any(
        step.get("env", {}).get("SYSTEM_ACCESSTOKEN") == "$(System.AccessToken)" for step in steps
    )
    (tmp_path / "azauth.toml").write_text(profile)

    result = azauth("run", "--emulate", cwd=tmp_path, timeout=60)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".azauth/platform.env").read_text().count("ARM_") >= 4
    assert "STATE_OIDC_TOKEN_FILE" in (tmp_path / ".azauth/state.env").read_text()
    assert "##vso[task.setvariable variable=VAULT_TOKEN;issecret=true]" in result.stdout


def test_container_registries_example_profile_and_pipeline(tmp_path):
    text = section("Container registries")
    profile = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    pipeline = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    steps = pipeline["jobs"][0]["steps"]
    assert any("docker-credential-azauth" in str(step) for step in steps)
    assert (
        sum(
            step.get("env", {}).get("SYSTEM_ACCESSTOKEN") == "$(System.AccessToken)"
            for step in steps
        )
        >= 2
    )
    (tmp_path / "azauth.toml").write_text(profile)

    result = azauth("run", "--emulate", cwd=tmp_path, timeout=60)

    assert result.returncode == 0, result.stderr
    config = (tmp_path / ".azauth/docker/config.json").read_text()
    assert '"contoso.azurecr.io": "azauth"' in config
