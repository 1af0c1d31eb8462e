"""Child of `azauth exec --serve`: a Vault token from DefaultAzureCredential, and what it saw.

Prints the token's ``appid``, then which of the federated-token file, client secret and system
token variables are set (a sorted list).
"""

import os

from azure.identity import DefaultAzureCredential

from agent.jwt import unverified_claims

token = DefaultAzureCredential().get_token("https://vault.azure.net/.default")
print(unverified_claims(token.token)["appid"])
names = ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_SECRET", "SYSTEM_ACCESSTOKEN")
print(sorted(name for name in names if name in os.environ))
