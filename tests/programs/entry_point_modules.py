"""Run one of azauth's console entry points in-process, then list the heavy modules it loaded.

``entry_point_modules.py ENTRY HEAVY ARGS...``: ENTRY is ``main`` (``azauth``) or
``docker_credential_main`` (``docker-credential-azauth``), HEAVY a comma-separated list of module
names. Prints ``LOADED=`` and the loaded modules that are (or are inside) one of HEAVY on stderr,
and exits with the entry point's status.
"""

import sys

entry, heavy_names = sys.argv[1], sys.argv[2].split(",")
program = {"main": "azauth", "docker_credential_main": "docker-credential-azauth"}[entry]
sys.argv = [program, *sys.argv[3:]]

import agent._entry  # noqa: E402 - after sys.argv is what the console script sees

code: object = 0
try:
    getattr(agent._entry, entry)()
except SystemExit as exc:
    code = exc.code
heavy = [m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy_names)]
print("LOADED=" + ",".join(sorted(heavy)), file=sys.stderr)
sys.exit(code)
