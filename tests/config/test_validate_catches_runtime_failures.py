"""`validate` reports what `run` would fail on or silently get wrong; paths expand like a shell's.

Each table row is a profile that used to validate OK and then failed or misbehaved at run time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.main import main
from agent.config import load_config
from tests.support import toml_output

HEAD = """
[connections.prod]
tenant_id = "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43"
client_id = "9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74"
service_connection_id = "c2d4e6f8-1a3b-4c5d-8e7f-9a0b1c2d3e4f"
subscription_id = "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"

[connections.other]
tenant_id = "3f6c2a4e-8b1d-4c7a-9e25-6d0f1b8a7c43"
client_id = "9a1e7b52-4c3d-4f8e-b6a0-2d5c8e1f3b74"
service_connection_id = "e7a9c1b3-5d2f-4e8a-b6c0-3f1d5a7b9c2e"
"""


PV = "pipeline_variables"

BROKEN = [
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind=PV, variables={"TOKEN": "access_token"})
        + toml_output(profile_name="ci", kind=PV, variables={"TOKEN": "oidc_token"}),
        "profiles.ci.outputs[1].variables.TOKEN",
        "pipeline variable TOKEN is also set by profiles.ci.outputs[0].variables.TOKEN",
        id="two-outputs-one-variable",
    ),
    pytest.param(
        '[profiles.base]\nconnections = ["prod"]\n'
        + toml_output(profile_name="base", kind=PV, variables={"A": "access_token"})
        + '[profiles.ci]\nextends = "base"\n'
        + toml_output(profile_name="ci", kind=PV, variables={"A": "tenant_id"}),
        "profiles.ci.outputs[0].variables.A",
        "also set by profiles.base.outputs[0].variables.A",
        id="via-extends",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="federated_token_file", path="out/prod.jwt")
        + toml_output(profile_name="ci", kind=PV, preset="terraform")
        + toml_output(profile_name="ci", kind=PV, variables={"ARM_CLIENT_ID": "client_id"}),
        "profiles.ci.outputs[2].variables.ARM_CLIENT_ID",
        "also set by profiles.ci.outputs[1].preset",
        id="preset-vs-explicit",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind=PV, preset="terraform"),
        "profiles.ci.outputs[0].preset",
        "keeps none",
        id="terraform-preset-without-federated-token-file",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod", "other"]\n'
        + toml_output(
            profile_name="ci", kind="federated_token_file", connection="other", path="out/o.jwt"
        )
        + toml_output(profile_name="ci", kind=PV, connection="prod", preset="azure-identity"),
        "profiles.ci.outputs[1].preset",
        "connection 'prod'",
        id="federated-token-file-of-another-connection",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="out/x")
        + toml_output(profile_name="ci", kind="token_file", path="out/x/y"),
        "profiles.ci.outputs[1].path",
        "needs the directory",
        id="file-vs-directory",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="out/a/b/c.token")
        + toml_output(profile_name="ci", kind="env_file", path="out/a", preset="azure-identity"),
        "profiles.ci.outputs[0].path",
        "writes as a file",
        id="file-is-a-grandparent",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="out/t")
        + toml_output(
            profile_name="ci",
            kind="env_file",
            path="out/t.env",
            preset="azure-identity",
            federated_token_path="out/t/jwt",
        ),
        "profiles.ci.outputs[1].federated_token_path",
        "needs the directory",
        id="federated-token-path-under-a-file",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="$(Agent.TempDirectory)/x"),
        "profiles.ci.outputs[0].path",
        "${AGENT_TEMPDIRECTORY}",
        id="pipeline-macro",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="${AZAUTH_TEST_UNSET}/x"),
        "profiles.ci.outputs[0].path",
        "environment variable AZAUTH_TEST_UNSET is not set",
        id="unset-variable",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="$AZAUTH_TEST_EMPTY/x"),
        "profiles.ci.outputs[0].path",
        "AZAUTH_TEST_EMPTY is empty",
        id="empty-variable",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="out/$/x"),
        "profiles.ci.outputs[0].path",
        "lone `$`",
        id="lone-dollar",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="~azauth-no-such-user/x"),
        "profiles.ci.outputs[0].path",
        "no such user",
        id="unknown-user",
    ),
]


@pytest.mark.parametrize(("text", "key_path", "message"), BROKEN)
def test_validate_reports_what_run_would_fail_on(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    key_path: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AZAUTH_TEST_UNSET", raising=False)
    monkeypatch.setenv("AZAUTH_TEST_EMPTY", "")
    (tmp_path / "azauth.toml").write_text(HEAD + text)

    code = main(["validate"])

    err = capsys.readouterr().err
    assert code == 3, err
    assert f"{key_path}: " in err
    assert message in err
    assert "Traceback" not in err


FINE = [
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(
            profile_name="ci", kind=PV, preset="terraform", variables={"ARM_CLIENT_ID": "tenant_id"}
        )
        + toml_output(profile_name="ci", kind="federated_token_file", path="out/p.jwt"),
        id="explicit-overrides-its-own-preset",
    ),
    pytest.param(
        '[profiles.a]\nconnections = ["prod"]\n'
        + toml_output(profile_name="a", kind=PV, variables={"T": "access_token"})
        + '[profiles.b]\nconnections = ["prod"]\n'
        + toml_output(profile_name="b", kind=PV, variables={"T": "access_token"}),
        id="same-variable-in-two-unrelated-profiles",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="env_file", path="out/tf.env", preset="terraform")
        + toml_output(profile_name="ci", kind=PV, preset="terraform"),
        id="preset-pointing-at-an-env-files-token-file",
    ),
    pytest.param(
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path="out/x.token")
        + toml_output(profile_name="ci", kind="token_file", path="out/xy/z.token"),
        id="sibling-with-a-common-prefix",
    ),
]


@pytest.mark.parametrize("text", FINE)
def test_what_run_handles_still_validates(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "azauth.toml").write_text(HEAD + text)
    assert main(["validate"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("written", "env", "expected"),
    [
        ("~/a.token", {"HOME": "/home/vsts"}, "/home/vsts/a.token"),
        ("~", {"HOME": "/home/vsts"}, "/home/vsts"),
        ("${AGENT_TEMPDIRECTORY}/x", {"AGENT_TEMPDIRECTORY": "/a/_temp"}, "/a/_temp/x"),
        ("$AGENT_TEMPDIRECTORY/x.token", {"AGENT_TEMPDIRECTORY": "/t"}, "/t/x.token"),
        ("out/$A-$B", {"A": "1", "B": "2"}, "out/1-2"),
        ("out/$${NOT}/x", {}, "out/${NOT}/x"),
        ("out/a~b", {}, "out/a~b"),
        ("out/plain", {}, "out/plain"),
    ],
)
def test_paths_expand_home_and_variables(
    tmp_path: Path, written: str, env: dict[str, str], expected: str
) -> None:
    path = tmp_path / "azauth.toml"
    path.write_text(
        HEAD
        + '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="token_file", path=written)
    )
    loaded = load_config(path, env=env)
    assert loaded.profile("ci", env={}).outputs[0].path == expected


@pytest.mark.parametrize(
    ("options", "warned"),
    [
        ({"secret": True, "preset": "terraform"}, "ARM_USE_OIDC, ARM_CLIENT_ID"),
        ({"secret": True, "variables": {"ID": "client_id", "T": "access_token"}}, "mask ID:"),
        (
            {
                "secret": True,
                "variables": {"ID": "client_id"},
                "secret_variables": ["ID"],
            },
            None,
        ),
        ({"variables": {"ID": "client_id"}}, None),
    ],
)
def test_validate_warns_when_secret_true_covers_public_values(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: dict[str, object],
    warned: str | None,
) -> None:
    monkeypatch.chdir(tmp_path)
    body = (
        '[profiles.ci]\nconnections = ["prod"]\n'
        + toml_output(profile_name="ci", kind="federated_token_file", path="out/p.jwt")
        + toml_output(profile_name="ci", kind=PV, **options)
    )
    (tmp_path / "azauth.toml").write_text(HEAD + body)
    assert main(["validate"]) == 0
    err = capsys.readouterr().err
    if warned is None:
        assert "warning" not in err
    else:
        assert "azauth: warning: " in err
        assert "profiles.ci.outputs[1].secret: secret = true does not mask" in err
        assert warned in err


def test_the_shipped_examples_do_not_use_secret_true() -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("azauth.toml.example", "azauth.yaml.example"):
        text = root.joinpath(name).read_text()
        assert "secret = true" not in text
        assert "secret: true" not in text


# Paths `run` could never write a file at (it failed with exit 6 after acquiring the tokens):
# the path's last name, control characters, and what the file system already holds there.
UNWRITABLE = [
    pytest.param("out/taken", lambda root: (root / "out/taken").mkdir(parents=True),
                 "is an existing directory", id="existing-directory"),
    pytest.param("~", lambda root: None, "is an existing directory", id="home-itself"),
    pytest.param("plain/x.token", lambda root: (root / "plain").write_text(""),
                 "plain' exists and is not a directory", id="a-file-on-the-way"),
    pytest.param("plain/deeper/x.token", lambda root: (root / "plain").write_text(""),
                 "plain' exists and is not a directory", id="a-file-further-up"),
    pytest.param("/dev/null", lambda root: None, "is a special file", id="device"),
    pytest.param("out/" + "n" * 300, lambda root: None, "a name is 300 bytes long", id="name-too-long"),
    pytest.param(".", lambda root: None, "invalid value '.'", id="dot"),
    pytest.param("out/..", lambda root: None, "invalid value 'out/..'", id="dot-dot"),
    pytest.param("out/a\rb", lambda root: None, "control characters", id="carriage-return"),
    pytest.param("out/a\nb", lambda root: None, "control characters", id="line-feed"),
    pytest.param("out/a\x1bb", lambda root: None, "control characters", id="escape"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "prepare", "message"), UNWRITABLE)
@pytest.mark.parametrize("argv", [["validate"], ["run", "--dry-run"]])
def test_a_path_run_could_never_write_is_a_config_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
    prepare: object,
    message: str,
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    prepare(tmp_path)  # type: ignore[operator]
    text = '[profiles.ci]\nconnections = ["prod"]\n' + toml_output(
        profile_name="ci", kind="token_file", path=path
    )
    (tmp_path / "azauth.toml").write_text(HEAD + text)

    code = main(argv)

    err = capsys.readouterr().err
    assert code == 3, err
    assert "profiles.ci.outputs[0].path: " in err
    assert message in err


@pytest.mark.parametrize(
    "path", ["out/x.token", "out/.hidden", "out/...", "out/existing.token", "out/link.token"]
)
def test_paths_run_can_write_still_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out/existing.token").write_text("old")
    (tmp_path / "out/link.token").symlink_to(tmp_path / "out/existing.token")
    text = '[profiles.ci]\nconnections = ["prod"]\n' + toml_output(
        profile_name="ci", kind="token_file", path=path
    )
    (tmp_path / "azauth.toml").write_text(HEAD + text)
    assert main(["validate"]) == 0, capsys.readouterr().err
