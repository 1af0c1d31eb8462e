"""Run a command with stdin (a pty) as the controlling terminal of a new session.

``controlling_terminal.py PROGRAM ARGS...``: setsid, TIOCSCTTY on fd 0, then exec PROGRAM.
"""

import fcntl
import os
import sys
import termios

os.setsid()
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
os.execv(sys.argv[1], sys.argv[1:])
