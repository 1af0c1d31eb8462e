"""Read ``AZURE_FEDERATED_TOKEN_FILE`` every 50 ms for SECONDS (argument; default 12).

Prints JSON: ``distinct`` tokens seen (by ``jti``), reads of an ``expired`` token, ``reads``.
"""

import base64
import json
import os
import sys
import time

path = os.environ["AZURE_FEDERATED_TOKEN_FILE"]
seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 12
seen: set[str] = set()
expired = reads = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    with open(path) as file:
        token = file.read()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    expired += claims["exp"] <= time.time()
    seen.add(claims["jti"])
    reads += 1
    time.sleep(0.05)
print(json.dumps({"distinct": len(seen), "expired": expired, "reads": reads}))
