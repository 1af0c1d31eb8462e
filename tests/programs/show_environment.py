"""Print, as one JSON object, the environment variables whose names start with any argument."""

import json
import os
import sys

prefixes = tuple(sys.argv[1:])
print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(prefixes)}))
