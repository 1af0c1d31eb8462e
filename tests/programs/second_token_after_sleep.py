"""azure-identity across token lifetimes: ``second_token_after_sleep.py mi|file SECONDS``.

Gets a Vault token from ManagedIdentityCredential (``mi``) or WorkloadIdentityCredential
(``file``), sleeps SECONDS, then (``file``) prints ``file-fresh BOOL`` for the federated token
file's ``exp``, and asks for a Storage token: ``second-token ok``, ``second-token AADSTS700024``
or ``second-token EXCEPTION_TYPE``.
"""

import base64
import json
import os
import sys
import time

from azure.identity import ManagedIdentityCredential, WorkloadIdentityCredential

mode, seconds = sys.argv[1], float(sys.argv[2])
credential = ManagedIdentityCredential() if mode == "mi" else WorkloadIdentityCredential()
credential.get_token("https://vault.azure.net/.default")
time.sleep(seconds)
if mode == "file":
    with open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]) as file:
        payload = file.read().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    print("file-fresh", claims["exp"] > time.time())
try:
    credential.get_token("https://storage.azure.com/.default")
    print("second-token ok")
except Exception as exc:
    print("second-token", "AADSTS700024" if "AADSTS700024" in str(exc) else type(exc).__name__)
