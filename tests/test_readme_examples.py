"""Every README example, extracted from its fenced block and run (or parsed) as written.

- ``python`` blocks compile; the library example runs against the emulator.
- ``toml`` blocks that hold a profile validate; the pipeline example's profile runs (see also
  tests/test_readme.py) and its pipeline references every connection the profile uses.
- every ``azauth ...`` command line in ``sh``/``console``/``bash``/``yaml`` blocks parses with
  azauth's own parser; the exec and serve examples run against the built-in emulator with the
  profile shown above them.
- the install recipe of the pipeline example (``pip install "azauth @ git+URL@COMMIT"``) installs
  a working ``azauth`` from this repository's own commit.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.cli.main import build_parser
from tests.support import AZAUTH, CLIENT, ROOT, SC, TENANT, azauth

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, re.S | re.M)


def blocks(*languages: str) -> list[str]:
    return [text for language, text in BLOCKS if language in languages]


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def pipeline_profile() -> str:
    text = section("An Azure Pipelines job with several connections")
    return re.search(r"```toml\n(.*?)```", text, re.S).group(1)


# ---------------------------------------------------------------------------------------------
# python


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_blocks_compile(index):
    compile(blocks("python")[index], f"README python block {index}", "exec")


async def test_the_library_example_runs(connected_emulator, tmp_path):
    example = next(b for b in blocks("python") if "AzurePipelinesCredential(" in b)
    script = (
        example.replace("<tenant id>", TENANT)
        .replace("<client id>", CLIENT)
        .replace("<service connection resourceId>", SC)
    )
    (tmp_path / "example.py").write_text(script)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "example.py", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    expires_on, token_type, _ = out.decode().split()
    assert int(expires_on) > 0
    assert token_type == "Bearer"
    assert connected_emulator.counts == {"oidc": 1, "token": 2}


async def test_the_emulator_example_runs():
    example = next(b for b in blocks("python") if "from agent.testing import Emulator" in b)
    namespace: dict[str, object] = {}
    exec(compile(example, "README emulator example", "exec"), namespace)  # noqa: S102
    await namespace["test_two_503s_are_retried"]()


# ---------------------------------------------------------------------------------------------
# toml and yaml


PROFILES = [b for b in blocks("toml") if "[profiles." in b]


@pytest.mark.parametrize("index", range(len(PROFILES)))
def test_every_profile_snippet_validates(index, tmp_path):
    (tmp_path / "azauth.toml").write_text(PROFILES[index])
    result = azauth("validate", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_pipeline_references_every_connection_of_its_profile():
    text = section("An Azure Pipelines job with several connections")
    pipeline = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    steps = pipeline["jobs"][0]["steps"]
    referenced = {
        step["inputs"]["azureSubscription"]
        for step in steps
        if "inputs" in step and "azureSubscription" in step["inputs"]
    }
    connections = re.findall(r"^\[connections\.(\w+)\]", pipeline_profile(), re.M)
    assert len(connections) == 2
    assert len(referenced) == len(connections)
    assert "referenced in the current stage" in text


@pytest.mark.parametrize("index", range(len(blocks("yaml"))))
def test_yaml_blocks_parse(index):
    yaml.safe_load(blocks("yaml")[index])


# ---------------------------------------------------------------------------------------------
# command lines


_LEADERS = frozenset({"nohup", "exec", "time", "command", "-", "script:", "|"})


def _command_lines() -> list[tuple[str, list[str]]]:
    """Every ``azauth ...`` invocation in the shell-like blocks, as argv lists."""
    found = []
    for text in blocks("sh", "console", "bash", "yaml", "powershell"):
        for raw in text.replace("\\\n", " ").splitlines():
            line = raw.split(" #", 1)[0].removeprefix("$ ")
            if "azauth" not in line:
                continue
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
            lexer.whitespace_split = True
            try:
                words = list(lexer)
            except ValueError:
                continue
            for start, word in enumerate(words):
                if Path(word).name != "azauth" or start + 1 >= len(words):
                    continue
                before = words[start - 1] if start else ""
                if before and not (set(before) <= set(";&|()<>") or before in _LEADERS):
                    continue  # "azauth" in prose (displayName: Install azauth ...)
                argv = []
                for item in words[start + 1 :]:
                    if item and set(item) <= set(";&|()<>"):
                        break
                    argv.append(item)
                if argv and argv[0] not in ("git-credential'",):
                    found.append((line.strip(), argv))
    return found


COMMAND_LINES = _command_lines()


def test_the_readme_shows_many_command_lines():
    assert len(COMMAND_LINES) >= 12


@pytest.mark.parametrize(("line", "argv"), COMMAND_LINES, ids=[c[0][:60] for c in COMMAND_LINES])
def test_every_command_line_parses(line, argv):
    argv = [word for word in argv if "$(" not in word]
    argv = ["<value>" if "<" in word and not word.startswith("-") else word for word in argv]
    if "--help" in argv or "-h" in argv:
        return
    build_parser().parse_args(argv)  # a usage error raises SystemExit(2)


def _run_readme_command(argv: list[str], cwd: Path, **kwargs):
    return subprocess.run(
        [*AZAUTH, *argv], cwd=cwd, capture_output=True, text=True,
        timeout=90, check=False, **kwargs,
    )  # fmt: skip


# The exec and serve sections follow the pipeline example and use its two-connection profile.
SHOWN_WITH_THE_PROFILE = section("`azauth exec`") + section("`azauth serve`")


@pytest.mark.parametrize(
    "prefix",
    sorted(
        {
            tuple(argv[: argv.index("--")])
            for line, argv in COMMAND_LINES
            if argv[0] == "exec" and line in SHOWN_WITH_THE_PROFILE
        }
    ),
)
def test_exec_examples_run_with_the_profile_shown(tmp_path, prefix):
    (tmp_path / "azauth.toml").write_text(pipeline_profile())
    # With --serve the presets describe the server (request flow, managed identity), not a file.
    show = "import os; print(os.environ.get('ARM_OIDC_TOKEN_FILE_PATH') or os.environ.get('AZURE_FEDERATED_TOKEN_FILE') or os.environ['IDENTITY_ENDPOINT'])"
    result = _run_readme_command([*prefix, "--emulate", "--", sys.executable, "-c", show], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        "/msi/token" if "--serve" in prefix else ".federated-token"
    )


@pytest.mark.parametrize(
    "argv",
    sorted(
        {
            tuple(argv)
            for line, argv in COMMAND_LINES
            if argv[0] == "serve" and line in SHOWN_WITH_THE_PROFILE
        }
    ),
)
def test_serve_examples_start_with_the_profile_shown(tmp_path, argv):
    (tmp_path / "azauth.toml").write_text(pipeline_profile())
    proc = subprocess.Popen(  # noqa: S603
        [*AZAUTH, *argv, "--emulate"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert line.startswith("export IDENTITY_ENDPOINT="), proc.stderr.read()
        if "--imds" in argv:
            assert "ARM_MSI_ENDPOINT=" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0


# ---------------------------------------------------------------------------------------------
# the install recipe


def test_no_example_installs_azauth_from_a_package_index():
    assert not re.search(r"pip install (-\w+ )*(--user )?azauth\b(?!\[)(?! @)", README)


def test_the_install_recipe_installs_a_working_azauth_from_a_pinned_commit(tmp_path):
    text = section("An Azure Pipelines job with several connections")
    recipe = re.search(r'pip" install -q "(azauth @ git\+https://[^"]+@<commit>)"', text)
    assert recipe is not None, "the pipeline example installs from a pinned git URL"
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    # The same requirement form, pointed at this repository instead of a hosting service.
    requirement = re.sub(
        r"git\+https://\S+@<commit>", f"git+file://localhost{ROOT}@{commit}", recipe.group(1)
    )
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), requirement],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import agent; print(agent.__file__)"],
        capture_output=True, text=True, env=env, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert where.stdout.startswith(str(target))
    version = subprocess.run(
        [str(target / "bin" / "azauth"), "--version"], capture_output=True, text=True, env=env,
        check=False,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("azauth ")
    validate = subprocess.run(
        [str(target / "bin" / "azauth"), "validate", "--config", str(ROOT / "azauth.toml.example")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert validate.returncode == 0, validate.stderr
