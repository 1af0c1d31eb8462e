"""Print, as JSON, what a command under `azauth exec` sees.

The variables named as arguments (``null`` when unset) and, when a federated token file is set
(``AZURE_FEDERATED_TOKEN_FILE`` or ``ARM_OIDC_TOKEN_FILE_PATH``), its content (``_token``), path
(``_path``), and the modes of the file and its directory (``_file_mode``, ``_dir_mode``).
"""

import json
import os
import stat
import sys

out: dict[str, object] = {name: os.environ.get(name) for name in sys.argv[1:]}
path = os.environ.get("AZURE_FEDERATED_TOKEN_FILE") or os.environ.get("ARM_OIDC_TOKEN_FILE_PATH")
if path:
    with open(path) as file:
        out["_token"] = file.read()
    out["_file_mode"] = stat.S_IMODE(os.stat(path).st_mode)
    out["_dir_mode"] = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
    out["_path"] = path
print(json.dumps(out))
