"""Log a fixed series of events in the ``azauth`` command, configured lazily or eagerly.

Usage: ``log_lines.py lazy|eager FORMAT LEVEL stdlib|azauth``. Marks the process as the command
(as the console scripts do), then calls ``configure_logging(fmt=FORMAT, level=LEVEL)`` on stderr:
``eager`` imports structlog first (as the command would, rich hidden), so the configuration is
installed at once; ``lazy`` leaves it to the first event at or above the level. The first event
comes from the standard ``logging`` module (a library) or from azauth's front. Prints one JSON line
on stdout: whether structlog was imported after configuring and after a suppressed event; the
log lines go to stderr.
"""

import json
import logging
import sys

from agent import logs
from agent._standalone import mark_command

mode, fmt, level, first = sys.argv[1:5]
mark_command()
if mode == "eager":
    logs._import_structlog()
logs.configure_logging(fmt=fmt, level=level)
seen = {"after_configure": "structlog" in sys.modules}
log = logs.get_logger("agent.runner")
log.debug("below_the_level", scope="s")
seen["after_suppressed"] = "structlog" in sys.modules
if first == "stdlib":
    logging.getLogger("aiohttp.client").warning("library says %s", "hello ##vso[task.complete]")
log.warning(
    "output_failed",
    path="out/x token",
    access_token="eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig",
    attempts=[1, 2],
    hint="line one\nline two ##vso[task.setvariable variable=x]y",
)
try:
    raise ValueError("broken ##[error] value")
except ValueError:
    log.exception("delivery_crashed", connection="prod")
log.error("connection_failed", connection="prod", error="refused")
logging.getLogger("azure.core").info("below the bridge's level")
print(json.dumps(seen))
