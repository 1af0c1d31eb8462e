"""Child of `azauth exec --serve`: azure-identity's clients against the OIDC request endpoint.

Arguments: ``TENANT CLIENT CLIENT2 SC2``. Prints the ``appid`` of a Vault token from
AzurePipelinesCredential (app CLIENT2 over service connection SC2, with the endpoint's per-run
secret), then of a Storage token from ClientAssertionCredential (app CLIENT) whose callback asks
the endpoint in the GitHub shape.
"""

import json
import os
import sys
import urllib.request

from azure.identity import AzurePipelinesCredential, ClientAssertionCredential

from agent.jwt import unverified_claims

tenant, client, client2, sc2 = sys.argv[1:5]
url = os.environ["AZAUTH_OIDC_REQUEST_URL"]
secret = os.environ["AZAUTH_OIDC_REQUEST_TOKEN"]
authority = os.environ["AZURE_AUTHORITY_HOST"]
assert "SYSTEM_ACCESSTOKEN" not in os.environ

# 1. AzurePipelinesCredential, pointed at the local endpoint with the per-run secret.
os.environ["SYSTEM_OIDCREQUESTURI"] = url
pipelines = AzurePipelinesCredential(
    tenant_id=tenant,
    client_id=client2,
    service_connection_id=sc2,
    system_access_token=secret,
    authority=authority,
)
print(unverified_claims(pipelines.get_token("https://vault.azure.net/.default").token)["appid"])


# 2. ClientAssertionCredential with a callback that asks the GitHub shape each time.
def assertion() -> str:
    request = urllib.request.Request(
        url + "?api-version=2.0&audience=api://AzureADTokenExchange",
        headers={"Authorization": "Bearer " + secret},
    )
    with urllib.request.urlopen(request) as answer:
        return str(json.load(answer)["value"])


github = ClientAssertionCredential(tenant, client, assertion, authority=authority)
print(unverified_claims(github.get_token("https://storage.azure.com/.default").token)["appid"])
