"""terraform and pulumi presets in the OIDC request flow (a token server runs for the consumer)."""

from __future__ import annotations

from agent.outputs.fields import TokenFields
from agent.outputs.presets import RequestFlow, preset_variables
from tests.support import CLIENT, TENANT

SUBSCRIPTION = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CONNECTION = "99999999-8888-7777-6666-555555555555"
FLOW = RequestFlow("http://127.0.0.1:4567/oidc/token", "per-run-secret")


def fields(**overrides):
    arguments = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "subscription_id": SUBSCRIPTION,
        "service_connection_id": CONNECTION,
        "authority": "https://login.microsoftonline.com",
        "federated_token_file": "/tmp/x/federated-token",
    }
    arguments.update(overrides)
    return TokenFields.build(**arguments)


def test_terraform_gets_the_azure_devops_request_flow_and_no_file():
    assert preset_variables("terraform", fields(), request_flow=FLOW) == {
        "ARM_USE_OIDC": "true",
        "ARM_CLIENT_ID": CLIENT,
        "ARM_TENANT_ID": TENANT,
        "ARM_SUBSCRIPTION_ID": SUBSCRIPTION,
        "ARM_OIDC_REQUEST_URL": FLOW.url,
        "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID": CONNECTION,
        "ARM_OIDC_REQUEST_TOKEN": "per-run-secret",
    }


def test_pulumi_gets_a_github_shape_url_naming_the_connection():
    variables = preset_variables("pulumi", fields(), request_flow=FLOW)
    assert "ARM_OIDC_TOKEN_FILE_PATH" not in variables
    assert "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID" not in variables
    # pulumi-azure-native appends "&audience=..." to the URL: it must already hold a query.
    assert variables["ARM_OIDC_REQUEST_URL"] == (
        f"{FLOW.url}?api-version=2.0&serviceConnectionId={CONNECTION}"
    )
    assert variables["ARM_OIDC_REQUEST_TOKEN"] == "per-run-secret"


def test_sovereign_cloud_named_and_azure_identity_leaves_the_file_out():
    gov = fields(authority="https://login.microsoftonline.us")
    assert (
        preset_variables("terraform", gov, request_flow=FLOW)["ARM_ENVIRONMENT"] == "usgovernment"
    )
    identity = preset_variables("azure-identity", fields(), request_flow=FLOW)
    # DefaultAzureCredential then reaches ManagedIdentityCredential (the server).
    assert identity == {
        "AZURE_CLIENT_ID": CLIENT,
        "AZURE_TENANT_ID": TENANT,
        "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com",
    }


def test_without_a_server_the_file_flow_as_before():
    variables = preset_variables("terraform", fields())
    assert variables["ARM_OIDC_TOKEN_FILE_PATH"] == "/tmp/x/federated-token"
    assert "ARM_OIDC_REQUEST_URL" not in variables


def test_repr_hides_the_secret():
    assert "per-run-secret" not in repr(FLOW)
