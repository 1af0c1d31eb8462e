"""Append ``TIME TOKEN`` lines to ./samples every 100 ms from ``AZURE_FEDERATED_TOKEN_FILE``.

Stops when a file ./stop exists.
"""

import os
import pathlib
import time

path = pathlib.Path(os.environ["AZURE_FEDERATED_TOKEN_FILE"])
stop = pathlib.Path("stop")
with open("samples", "a") as samples:
    while not stop.exists():
        samples.write(f"{time.time()} {path.read_text()}\n")
        samples.flush()
        time.sleep(0.1)
