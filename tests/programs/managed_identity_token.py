"""Child of `azauth exec --serve`: a Vault token from ManagedIdentityCredential, and what it saw.

Prints ``AUDIENCE APPID ENDPOINT_IS_LOOPBACK`` then whether ``SYSTEM_ACCESSTOKEN`` reached it.
"""

import os

from azure.identity import ManagedIdentityCredential

from agent.jwt import unverified_claims

token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
claims = unverified_claims(token.token)
endpoint = os.environ["IDENTITY_ENDPOINT"]
print(claims["aud"], claims["appid"], endpoint.startswith("http://127.0.0.1:"))
print("SYSTEM_ACCESSTOKEN" in os.environ)
