"""Presets: variable names pinned against anchors.md section 3, and explicit mappings."""

from __future__ import annotations

import pytest
from azure.identity import WorkloadIdentityCredential
from azure.identity._constants import EnvironmentVariables

from agent.outputs.fields import TokenFields
from agent.outputs.presets import PRESETS, preset_variables, resolve_variables
from tests.support import CLIENT, TENANT

SUBSCRIPTION = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CONNECTION = "99999999-8888-7777-6666-555555555555"
TOKEN_FILE = "/agent/_temp/azauth/federated-token"
OIDC = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYyJ9.oidc-signature"


def fields(**overrides):
    arguments = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "subscription_id": SUBSCRIPTION,
        "service_connection_id": CONNECTION,
        "authority": "https://login.microsoftonline.com",
        "oidc_token": OIDC,
        "federated_token_file": TOKEN_FILE,
    }
    arguments.update(overrides)
    return TokenFields.build(**arguments)


# Expected names, hard-coded from /work/shared/reference/anchors.md:
# §3.1 azurerm provider / §3.2 azurerm backend: ARM_USE_OIDC, ARM_CLIENT_ID, ARM_TENANT_ID,
#   ARM_SUBSCRIPTION_ID, ARM_OIDC_TOKEN_FILE_PATH, ARM_ENVIRONMENT (public, usgovernment, german, china).
# §3.4 Pulumi azure-native: useOidc/ARM_USE_OIDC, clientId/ARM_CLIENT_ID, tenantId/ARM_TENANT_ID,
#   subscriptionId/ARM_SUBSCRIPTION_ID, oidcTokenFilePath/ARM_OIDC_TOKEN_FILE_PATH,
#   environment/ARM_ENVIRONMENT.
# §3.5 azure-identity WorkloadIdentityCredential: AZURE_CLIENT_ID, AZURE_TENANT_ID,
#   AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST.
TERRAFORM_NAMES = [
    "ARM_USE_OIDC",
    "ARM_CLIENT_ID",
    "ARM_TENANT_ID",
    "ARM_SUBSCRIPTION_ID",
    "ARM_OIDC_TOKEN_FILE_PATH",
]
PULUMI_NAMES = TERRAFORM_NAMES
AZURE_IDENTITY_NAMES = [
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
]


class TestNames:
    def test_preset_list(self):
        """The three documented presets exist."""
        assert PRESETS == ("terraform", "pulumi", "azure-identity")

    @pytest.mark.parametrize(
        ("preset", "names"),
        [
            ("terraform", TERRAFORM_NAMES),
            ("pulumi", PULUMI_NAMES),
            ("azure-identity", AZURE_IDENTITY_NAMES),
        ],
    )
    def test_public_cloud_names(self, preset, names):
        """Each preset sets exactly the anchors' variable names, in a stable order."""
        assert list(preset_variables(preset, fields())) == names

    @pytest.mark.parametrize(
        ("preset", "authority", "environment"),
        [
            ("terraform", "https://login.microsoftonline.us", "usgovernment"),
            ("terraform", "https://login.chinacloudapi.cn", "china"),
            ("pulumi", "https://login.microsoftonline.us", "usgovernment"),
            ("pulumi", "https://login.chinacloudapi.cn", "china"),
        ],
    )
    def test_sovereign_clouds_add_arm_environment(self, preset, authority, environment):
        """ARM_ENVIRONMENT is added for sovereign clouds, with the consumer's name for the cloud."""
        variables = preset_variables(preset, fields(authority=authority))

        assert list(variables) == [*TERRAFORM_NAMES, "ARM_ENVIRONMENT"]
        assert variables["ARM_ENVIRONMENT"] == environment

    def test_unknown_authority_sets_no_environment(self):
        """An authority azauth does not know (a test endpoint) adds no ARM_ENVIRONMENT."""
        variables = preset_variables("terraform", fields(authority="https://127.0.0.1:8443"))

        assert "ARM_ENVIRONMENT" not in variables


class TestValues:
    def test_terraform_values(self):
        """terraform: OIDC on, ids, and the federated token file path."""
        assert preset_variables("terraform", fields()) == {
            "ARM_USE_OIDC": "true",
            "ARM_CLIENT_ID": CLIENT,
            "ARM_TENANT_ID": TENANT,
            "ARM_SUBSCRIPTION_ID": SUBSCRIPTION,
            "ARM_OIDC_TOKEN_FILE_PATH": TOKEN_FILE,
        }

    def test_subscription_only_when_known(self):
        """Without a subscription id, ARM_SUBSCRIPTION_ID is left out rather than empty."""
        variables = preset_variables("terraform", fields(subscription_id=None))

        assert "ARM_SUBSCRIPTION_ID" not in variables

    def test_azure_identity_values(self):
        """azure-identity: authority as an https URL, as azure-identity normalises it."""
        assert preset_variables(
            "azure-identity", fields(authority="login.microsoftonline.us/")
        ) == {
            "AZURE_CLIENT_ID": CLIENT,
            "AZURE_TENANT_ID": TENANT,
            "AZURE_FEDERATED_TOKEN_FILE": TOKEN_FILE,
            "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us",
        }

    @pytest.mark.parametrize("preset", PRESETS)
    def test_token_file_is_required(self, preset):
        """Every preset points at the federated token file; without one it is a ValueError."""
        with pytest.raises(ValueError, match="federated token file"):
            preset_variables(preset, fields(federated_token_file=None))

    def test_no_secret_ends_up_in_a_preset(self):
        """Presets carry paths and ids, never the OIDC token itself."""
        for preset in PRESETS:
            assert OIDC not in preset_variables(preset, fields()).values()

    def test_unknown_preset(self):
        """An unknown preset names the known ones."""
        with pytest.raises(ValueError, match="terraform, pulumi, azure-identity"):
            preset_variables("ansible", fields())


class TestAzureIdentityReadsThePreset:
    def test_workload_identity_credential_configures_from_the_variables(
        self, monkeypatch, tmp_path
    ):
        """azure-identity's WorkloadIdentityCredential() finds everything it needs in the preset."""
        token_file = tmp_path / "federated-token"
        token_file.write_text(OIDC)
        variables = preset_variables("azure-identity", fields(federated_token_file=str(token_file)))
        for name in (*AZURE_IDENTITY_NAMES, "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

        credential = WorkloadIdentityCredential()  # raises ValueError when a variable is missing

        # DefaultAzureCredential and ManagedIdentityCredential enable workload identity only when
        # all of these are set; the preset provides every one.
        assert set(EnvironmentVariables.WORKLOAD_IDENTITY_VARS) <= set(variables)
        assert credential._get_service_account_token() == OIDC
        credential.close()


class TestResolveVariables:
    def test_explicit_mapping_after_preset_and_wins(self):
        """Explicit NAME=field mappings follow the preset's variables and override duplicates."""
        variables = resolve_variables(
            "terraform",
            {
                "ARM_CLIENT_ID": "tenant_id",
                "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID": "service_connection_id",
            },
            fields(),
        )

        assert variables["ARM_CLIENT_ID"] == TENANT
        assert variables["ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID"] == CONNECTION
        assert list(variables)[-1] == "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID"

    def test_without_preset(self):
        """With no preset only the explicit mapping is rendered."""
        variables = resolve_variables(None, {"TOKEN_EXPIRES": "expires_on"}, fields(expires_on=42))

        assert variables == {"TOKEN_EXPIRES": "42"}

    def test_unknown_value_names_variable_and_field(self):
        """A mapped field with no value is a ValueError naming the variable and the field."""
        with pytest.raises(ValueError, match="MY_TOKEN.*'access_token'"):
            resolve_variables(None, {"MY_TOKEN": "access_token"}, fields())

    def test_unknown_field(self):
        """A mapping to a field that does not exist is a ValueError naming it."""
        with pytest.raises(ValueError, match="X.*'token'"):
            resolve_variables(None, {"X": "token"}, fields())
