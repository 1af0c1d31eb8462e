"""Ask keyring for ``VssSessionToken`` at URL: ``keyring_probe.py URL [MODULE...]``.

Prints ``ANSWER=<password or None>``, then ``HEAVY=`` and the comma-separated modules loaded by
then that are (or are inside) one of MODULE.
"""

import sys

import keyring

answer = keyring.get_password(sys.argv[1], "VssSessionToken")
heavy_prefixes = sys.argv[2:]
heavy = sorted(
    name
    for name in sys.modules
    if any(name == h or name.startswith(h + ".") for h in heavy_prefixes)
)
print("ANSWER=" + str(answer))
print("HEAVY=" + ",".join(heavy))
