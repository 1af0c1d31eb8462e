"""Count SIGINT deliveries: ``count_interrupts.py READY COUNTER``.

Python merges signals that arrive before its handler runs, so deliveries are counted through the
wakeup fd, where the C-level handler writes one byte each. Creates READY once the handler is set,
waits (up to 30 s) for the first SIGINT, then 2 s more for others, and writes the count to COUNTER.
"""

import signal
import socket
import sys
import time

ready, counter = sys.argv[1], sys.argv[2]
r, w = socket.socketpair()
r.setblocking(False)
w.setblocking(False)
signal.set_wakeup_fd(w.fileno())
hits: list[int] = []
signal.signal(signal.SIGINT, lambda *_: hits.append(1))
open(ready, "w").close()
deadline = time.monotonic() + 30
while not hits and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(2.0)  # the other presses, and room for forwarded duplicates
data = r.recv(100)
with open(counter, "w") as file:
    file.write(str(data.count(signal.SIGINT)))
