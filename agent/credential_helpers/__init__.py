"""Credential helpers: the cached-token service, the cache, the warm path (no imports here)."""
