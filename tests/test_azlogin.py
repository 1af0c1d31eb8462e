"""`--az-login`: which az commands sign a profile in (pure), and the profile option."""

from __future__ import annotations

import pytest

from agent.azlogin import AZ_CONFIG, find_az, login_commands
from agent.config import load_config
from agent.exceptions import UsageError
from tests.support import TENANT

SUB = "5b8d0f2a-6c4e-4a1b-9d3f-7e2a4c6b8d01"


def profile(tmp_path, *, gov_other=False, az_login=False):
    other_cloud = 'cloud = "usgovernment"' if gov_other else ""
    (tmp_path / "azauth.toml").write_text(
        f"""
[connections.prod]
tenant_id = "{TENANT}"
client_id = "11111111-2222-3333-4444-555555555555"
service_connection_id = "00000000-aaaa-bbbb-cccc-000000000001"
subscription_id = "{SUB}"

[connections.other]
tenant_id = "{TENANT}"
client_id = "11111111-2222-3333-4444-666666666666"
service_connection_id = "00000000-aaaa-bbbb-cccc-000000000002"
{other_cloud}

[profiles.ci]
connections = ["prod", "other"]
az_login = {str(az_login).lower()}
"""
    )
    return load_config(tmp_path / "azauth.toml").profile("ci")


def test_each_connection_signed_in_and_the_default_selected_last(tmp_path):
    commands = login_commands(profile(tmp_path), "prod")

    assert commands[0] == ["cloud", "set", "--name", "AzureCloud"]
    assert [c[3] for c in commands[1:3]] == [
        "11111111-2222-3333-4444-666666666666",
        "11111111-2222-3333-4444-555555555555",
    ]
    assert all(c[:2] == ["login", "--identity"] for c in commands[1:3])
    assert commands[-1] == ["account", "set", "--subscription", SUB]


def test_no_subscription_no_account_set(tmp_path):
    commands = login_commands(profile(tmp_path), "other")
    assert commands[-1][0] == "login"
    assert commands[-1][3] == "11111111-2222-3333-4444-666666666666"


def test_mixed_clouds_refused(tmp_path):
    with pytest.raises(UsageError, match="different clouds") as caught:
        login_commands(profile(tmp_path, gov_other=True), "prod")
    assert "--az-login" not in str(caught.value)  # the library names no flag; the CLI adds it


def test_config_turns_telemetry_and_upgrades_off():
    assert "collect_telemetry = false" in AZ_CONFIG
    assert "[auto-upgrade]\nenable = no" in AZ_CONFIG


def test_missing_az_named(tmp_path):
    with pytest.raises(UsageError, match=r"az\) is not on PATH") as caught:
        find_az({"PATH": str(tmp_path)})
    assert "--az-login" not in str(caught.value)


def test_profile_option(tmp_path):
    assert profile(tmp_path, az_login=True).az_login is True
    assert profile(tmp_path).az_login is False
