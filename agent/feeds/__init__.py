"""Azure Artifacts feeds: credentials for pip, uv, twine, npm, NuGet and Maven.

::

    urls.py            PURE, stdlib: feed URL shapes, client endpoints, routing a URL to a feed
    render.py          PURE: npmrc (merged), Maven settings.xml, NuGet/uv/twine variables
    writer.py          merge-writing an npmrc atomically; removing azauth's lines again
    outputs.py         the files of the feed output kinds, called by agent.outputs.kinds
    keyring_backend.py the ``keyring.backends`` entry point (import-light)
    lookup.py          the keyring's answers: exec's private files, the shared cache, Entra
    execenv.py         ``azauth exec --feeds``: private client configuration for one command

Nothing is imported until used: the keyring backend must load fast.
"""

__all__ = ["FEED_OUTPUT_KINDS"]

FEED_OUTPUT_KINDS: frozenset[str] = frozenset({"npmrc", "maven_settings", "feed_env_file"})
"""Output kinds that configure package feed clients (the config models define them)."""
