"""The README's long-running story is real: its table covers every consumer, its examples run."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.support import AZAUTH, ROOT

README = (ROOT / "README.md").read_text()
TITLE = "## Long-running tools: staying signed in for the whole job"


def section() -> str:
    start = README.index(TITLE)
    end = README.find("\n## ", start + 1)
    return README[start:end]


def test_the_table_covers_every_consumer_and_says_how_it_is_known():
    text = section()
    table = text[text.index("### Which delivery for which consumer") :]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    consumers = [row.split("|")[1].strip() for row in rows]
    for name in (
        "Terraform",
        "Pulumi",
        "Azure CLI",
        "Az PowerShell",
        "azure-identity",
        "MSAL",
        "kubelogin",
        "Docker",
    ):
        assert any(name in consumer for consumer in consumers), name
    for row in rows:
        basis = row.rstrip(" |").rsplit("|", 1)[1].strip()
        assert basis.startswith(("verified", "source", "documentation", "reasoning")), row
        for test_file in re.findall(r"`(test_\w+\.py)`", basis):
            assert list(ROOT.glob(f"tests/**/{test_file}")), test_file


def test_the_pipeline_example_maps_each_secret_it_uses():
    steps = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section(), re.S).group(1))["steps"]
    assert "serve --background" in steps[0]["script"]
    assert steps[0]["env"]["SYSTEM_ACCESSTOKEN"] == "$(System.AccessToken)"
    assert steps[1]["env"] == {"ARM_OIDC_REQUEST_TOKEN": "$(ARM_OIDC_REQUEST_TOKEN)"}
    assert "serve --stop" in steps[-1]["script"]


def test_the_options_it_names_exist():
    exec_help = subprocess.run(
        [*AZAUTH, "exec", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    serve_help = subprocess.run(
        [*AZAUTH, "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in ("--az-login", "--serve", "--preset"):
        assert option in exec_help
    for option in ("--background", "--stop", "--state-file", "--max-lifetime", "--preset"):
        assert option in serve_help
