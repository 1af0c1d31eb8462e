"""Print, as one JSON object, the environment variables named as arguments (null when unset)."""

import json
import os
import sys

print(json.dumps({name: os.environ.get(name) for name in sys.argv[1:]}))
