"""Trap a signal: ``trap_signal.py MARKER READY SIGNAME``.

Writes its pid to READY once the handler is set; when SIGNAME arrives, writes the signal's name
to MARKER and exits 0. Exits 9 if nothing arrives within 60 seconds.
"""

import os
import signal
import sys
import time

marker, ready, name = sys.argv[1], sys.argv[2], sys.argv[3]


def handle(signum: int, _frame: object) -> None:
    with open(marker, "w") as file:
        file.write(signal.Signals(signum).name)
    sys.exit(0)


signal.signal(getattr(signal, name), handle)
with open(ready, "w") as file:
    file.write(str(os.getpid()))
time.sleep(60)
sys.exit(9)
