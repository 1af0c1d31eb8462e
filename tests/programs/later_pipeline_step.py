"""A later pipeline step that has only the variables `azauth serve --background` printed.

Prints the ``appid`` of an ARM token from ManagedIdentityCredential, then the audience of the
OIDC token the server's request endpoint answers in the Azure DevOps shape (POST with
``serviceConnectionId``) and in the GitHub shape (GET).
"""

import json
import os
import urllib.request

from azure.identity import ManagedIdentityCredential

from agent.jwt import unverified_claims

token = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
print(unverified_claims(token.token)["appid"])

secret = os.environ["ARM_OIDC_REQUEST_TOKEN"]
base = os.environ["ARM_OIDC_REQUEST_URL"]
connection = os.environ["ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID"]
ado = urllib.request.Request(
    base + "?api-version=7.1&audience=api://AzureADTokenExchange&serviceConnectionId=" + connection,
    method="POST",
    headers={"Authorization": "Bearer " + secret},
)
with urllib.request.urlopen(ado) as answer:
    print(unverified_claims(json.load(answer)["oidcToken"])["aud"])
github = urllib.request.Request(
    base + "?audience=api://AzureADTokenExchange", headers={"Authorization": "Bearer " + secret}
)
with urllib.request.urlopen(github) as answer:
    print(unverified_claims(json.load(answer)["value"])["aud"])
