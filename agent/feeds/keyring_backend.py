"""A keyring backend answering Azure Artifacts feed URLs with an Entra token for Azure DevOps.

Registered through the ``keyring.backends`` entry point of the ``azauth`` distribution, so every
keyring user in the environment finds it: ``pip --keyring-provider import`` (in pip's
process), ``pip``/``uv --keyring-provider subprocess`` (through the ``keyring`` command) and
``twine`` (which asks keyring for the repository URL's credentials).

For a URL below a feed (or organization) of the selected profile it answers the Azure DevOps
token of the connection that reads the feed (:func:`agent.feeds.lookup.find_token`), with the
caller's user name or ``azauth`` (Azure Artifacts ignores it). For any other URL it answers
``None``: keyring's chainer then asks the next backend. It stores and deletes nothing.

Priority 9.5: above the platform keyrings (Secret Service 5, macOS 5, Windows 5), so the
chainer asks azauth first, and below the chainer (10), which it therefore never displaces.

Importing this module costs only the standard library and keyring itself: keyring imports it
in every process that loads keyring, whatever URL it is asked about. Its module docstring and
the keyring ``backend.KeyringBackend`` API (``priority``, ``get_password``,
``get_credential``, ``set_password``, ``delete_password``) come from keyring's documentation.
"""

from __future__ import annotations

from keyring import backend, credentials, errors

__all__ = ["AzauthKeyring"]

_DEFAULT_USERNAME = "azauth"


class AzauthKeyring(backend.KeyringBackend):
    """Azure Artifacts credentials from azauth's profile (read-only)."""

    priority = 9.5

    def get_credential(
        self, service: str, username: str | None
    ) -> credentials.SimpleCredential | None:
        """``(username or "azauth", token)`` for a feed URL of the profile, else ``None``."""
        from agent.feeds.lookup import find_token  # noqa: PLC0415 - loaded on first use only

        token = find_token(service)
        if token is None:
            return None
        return credentials.SimpleCredential(username or _DEFAULT_USERNAME, token)

    def get_password(self, service: str, username: str) -> str | None:
        """The token for a feed URL of the profile (any user name), else ``None``."""
        found = self.get_credential(service, username)
        return None if found is None else found.password

    def set_password(self, service: str, username: str, password: str) -> None:  # noqa: ARG002
        """Refused: tokens come from the profile, not from storage."""
        raise errors.PasswordSetError("azauth's keyring backend stores nothing")

    def delete_password(self, service: str, username: str) -> None:  # noqa: ARG002
        """Refused: there is nothing stored to delete."""
        raise errors.PasswordDeleteError("azauth's keyring backend stores nothing")
