"""Count the trust-store loads of a process that imports aiohttp and builds azauth's TLS context.

Usage: ``trust_store_loads.py command|prewarm|library``. ``command`` marks the process as the
``azauth`` command first (as the console scripts do); ``prewarm`` also starts loading the trust
store on a thread before aiohttp's import, as ``azauth run`` does. Prints one JSON line: ``loads``
(calls that read certificates: ``load_verify_locations`` and ``set_default_verify_paths``),
``loads_off_main`` (those made on another thread), ``ours`` (CA certificates in the context azauth
sends with), ``ours_certs`` (their DER bytes' SHA-256, sorted) and ``aiohttp_default`` (CA
certificates in aiohttp's import-time verifying context).
"""

import hashlib
import json
import os
import ssl
import sys
import threading

from agent._standalone import mark_command

if sys.argv[1] in ("command", "prewarm"):
    mark_command()

loads = [0]
off_main = [0]
load_verify_locations = ssl.SSLContext.load_verify_locations
set_default_verify_paths = ssl.SSLContext.set_default_verify_paths


def counted_load(self, *args, **kwargs):
    loads[0] += 1
    off_main[0] += threading.current_thread() is not threading.main_thread()
    return load_verify_locations(self, *args, **kwargs)


def counted_paths(self):
    loads[0] += 1
    off_main[0] += threading.current_thread() is not threading.main_thread()
    return set_default_verify_paths(self)


ssl.SSLContext.load_verify_locations = counted_load
ssl.SSLContext.set_default_verify_paths = counted_paths

if sys.argv[1] == "prewarm":
    from agent import _trust

    _trust.prewarm(os.environ)

import aiohttp.connector  # noqa: E402

from agent import _http  # noqa: E402

ours = _http.ssl_context_from_env(os.environ)
default = aiohttp.connector._SSL_CONTEXT_VERIFIED
print(
    json.dumps(
        {
            "loads": loads[0],
            "loads_off_main": off_main[0],
            "ours": ours.cert_store_stats()["x509_ca"],
            "ours_certs": sorted(
                hashlib.sha256(der).hexdigest() for der in ours.get_ca_certs(binary_form=True)
            ),
            "aiohttp_default": default.cert_store_stats()["x509_ca"],
            "restored": ssl.SSLContext.set_default_verify_paths is counted_paths,
        }
    )
)
