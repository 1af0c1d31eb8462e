"""azure-core's base classes for the library, stand-ins for them in the ``azauth`` command.

A program using the library gets the real ``azure.core.exceptions.ClientAuthenticationError``
and ``azure.core.credentials.AccessToken`` / ``AccessTokenInfo`` as the bases of
:class:`agent.exceptions.AuthenticationError` and :mod:`agent.exchange`'s token types, so
``except ClientAuthenticationError`` and azure-identity's chains work with azauth's credential.

The ``azauth`` command (marked by :func:`agent._standalone.mark_command` before any of these
modules is imported) catches its own classes only, so it gets stand-ins with the same fields
and saves importing azure-core (about 45 ms: its package imports its pipeline, which drags
``email``, ``http.client``, ``xml`` and ``platform`` in). If azure-core was imported already,
the real classes are used anyway. The choice is made once, when this module is first imported.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

from agent._standalone import is_command

__all__ = ["REAL", "AccessToken", "AccessTokenInfo", "ClientAuthenticationError"]

REAL = not is_command() or "azure.core" in sys.modules
"""Whether the bases are azure-core's own classes."""

TYPE_CHECKING = False  # not from typing: see agent/__init__.py
if TYPE_CHECKING or REAL:
    from azure.core.credentials import AccessToken, AccessTokenInfo
    from azure.core.exceptions import ClientAuthenticationError
else:

    class ClientAuthenticationError(Exception):
        """Stand-in with the fields of azure-core's class (which is never imported here)."""

        def __init__(self, message: object = None, response: Any = None, **kwargs: Any) -> None:
            self.inner_exception = kwargs.get("error")
            self.exc_type: type[Any] | None = None
            self.exc_value: BaseException | None = None
            self.exc_traceback: Any = None
            self.exc_msg = str(message)
            self.message = str(message)
            self.continuation_token = kwargs.get("continuation_token")
            self.reason: str | None = None
            self.status_code: int | None = None
            self.response = response
            self.model: Any = None
            self.error: Any = None
            super().__init__(self.message)

    class AccessToken(NamedTuple):
        """Stand-in for ``azure.core.credentials.AccessToken``."""

        token: str
        expires_on: int

    class AccessTokenInfo:
        """Stand-in for ``azure.core.credentials.AccessTokenInfo``."""

        def __init__(
            self,
            token: str,
            expires_on: int,
            *,
            token_type: str = "Bearer",  # noqa: S107 - a token type name
            refresh_on: int | None = None,
        ) -> None:
            self.token = token
            self.expires_on = expires_on
            self.token_type = token_type
            self.refresh_on = refresh_on
