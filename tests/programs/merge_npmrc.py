"""One writer of a shared .npmrc: ``merge_npmrc.py PATH OWNER COUNT``.

Waits for ``PATH.go``, then writes OWNER's feed block COUNT times through MergedNpmrc; exits 3
if the other writer's block (``alpha``/``beta``), once seen, is ever lost.
"""

import os
import sys
import time

from agent.feeds.render import FeedTarget
from agent.feeds.urls import parse_feed_url
from agent.feeds.writer import MergedNpmrc

path, owner, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
url = parse_feed_url(f"https://pkgs.dev.azure.com/{owner}/_packaging/f")
target = FeedTarget(owner, url, f"@{owner}")
while not os.path.exists(path + ".go"):
    time.sleep(0.001)
other = "beta" if owner == "alpha" else "alpha"
seen = False
for n in range(count):
    MergedNpmrc(path, owner, [target], f"token.{owner}.{n}").write()
    with open(path) as file:
        present = f"feeds ({other})" in file.read()
    if seen and not present:
        sys.exit(3)  # the other's block, once written, was lost
    seen = seen or present
