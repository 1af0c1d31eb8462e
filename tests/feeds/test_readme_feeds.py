"""The README's package feeds section: its profile validates, its pipeline parses."""

from __future__ import annotations

import contextlib
import re

import yaml

from agent.cli.main import main
from tests.support import ROOT

README = (ROOT / "README.md").read_text()
TITLE = "## Package feeds: Azure Artifacts for pip, uv, twine, npm, NuGet and Maven"


def section() -> str:
    start = README.index(TITLE)
    return README[start : README.index("\n## ", start + 1)]


def test_profile_validates(tmp_path, capsys):
    profile = re.search(r"```toml\n(.*?)```", section(), re.S).group(1)
    path = tmp_path / "azauth.toml"
    path.write_text(profile)
    assert main(["validate", "--config", str(path)]) == 0, capsys.readouterr().err
    assert "1 profile, 1 connection, 3 outputs" in capsys.readouterr().err


def test_pipeline_maps_the_system_token_and_uses_exec_feeds():
    steps = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section(), re.S).group(1))["steps"]
    script = next(step for step in steps if "azauth exec --feeds" in (step.get("script") or ""))
    assert script["env"] == {"SYSTEM_ACCESSTOKEN": "$(System.AccessToken)"}


def test_exec_help_lists_feeds(capsys):
    with contextlib.suppress(SystemExit):
        main(["exec", "--help"])
    assert "--feeds" in capsys.readouterr().out
