"""The one exception tree of azauth, and the exit codes the CLI maps it to.

::

    AzauthError
    ├── ConfigError                 a profile file or setting is wrong (file, key path, expected)
    ├── UsageError                  the command line is wrong
    ├── OutputError                 an output could not be written (path)
    └── AuthenticationError         also azure-core's ClientAuthenticationError (library)
        ├── CredentialUnavailableError   no SYSTEM_OIDCREQUESTURI (a chain moves on)
        ├── OidcRequestError        step 1: Azure DevOps answered something other than a token
        ├── EntraError              step 2: Microsoft Entra answered an OAuth error
        └── TransportError          the network failed (connection, TLS, timeout) after retries
            └── ProxyAuthenticationError   the proxy answered 407 (never retried)

Contract: no message, ``repr`` or ``__cause__``/``__context__`` of these exceptions ever holds a
system access token, an OIDC token or an access token. Errors raised while handling another
exception are raised ``from None`` by the callers, and the azure-core bookkeeping that captures
``sys.exc_info()`` is cleared here.
"""

from __future__ import annotations

import enum
import sys
from typing import Any

from agent._azure_core import ClientAuthenticationError

__all__ = [
    "AuthenticationError",
    "AzauthError",
    "ConfigError",
    "CredentialUnavailableError",
    "EntraError",
    "ExitCode",
    "NoUsableLifeError",
    "OidcRequestError",
    "OutputError",
    "ProxyAuthenticationError",
    "TransportError",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """Process exit codes; the README documents the same table."""

    OK = 0
    INTERNAL = 1  # a bug: an unexpected exception
    USAGE = 2  # bad command line (argparse uses 2 as well)
    CONFIG = 3  # the profile file or a setting is invalid
    AUTH = 4  # every token request failed
    PARTIAL = 5  # some connections delivered, others failed
    OUTPUT = 6  # a token was acquired but an output could not be written


class AzauthError(Exception):
    """Base of every error azauth raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(AzauthError, ValueError):
    """A profile file, setting or environment variable is invalid.

    Also a ``ValueError``: the Azure SDK raises ``ValueError`` for bad credential arguments, and
    the library raises this one (naming the argument or variable) in the same places.

    Attributes:
        file: the file the mistake is in, if any.
        key_path: dotted path of the offending key (``profiles.ci.outputs[0].path``), if any.
        expected: what would have been accepted, in words.
    """

    exit_code = ExitCode.CONFIG

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key_path: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.file = file
        self.key_path = key_path
        self.expected = expected
        self.detail = message
        parts = []
        if file:
            parts.append(str(file))
        if key_path:
            parts.append(key_path)
        prefix = ": ".join(parts)
        text = f"{prefix}: {message}" if prefix else message
        if expected:
            text = f"{text} (expected {expected})"
        super().__init__(text)


class UsageError(AzauthError):
    """The command line is wrong."""

    exit_code = ExitCode.USAGE


class OutputError(AzauthError):
    """An output could not be written; the previous content of ``path`` is untouched."""

    exit_code = ExitCode.OUTPUT

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class AuthenticationError(AzauthError, ClientAuthenticationError):
    """Authentication failed; also an ``azure.core.exceptions.ClientAuthenticationError``.

    (Inside the ``azauth`` command process itself the base is a stand-in with the same fields,
    so the command does not import azure-core: see :mod:`agent._azure_core`.)

    ``status_code`` is the HTTP status of the failing answer (``None`` when there was none),
    ``retryable`` tells callers whether trying again later can help.
    """

    exit_code = ExitCode.AUTH
    retryable: bool = False
    retry_after: float | None = None  # seconds the service asked to wait (Retry-After), if any

    def __init__(
        self, message: str, *, status_code: int | None = None, reason: str | None = None
    ) -> None:
        ClientAuthenticationError.__init__(self, message=message)
        self.status_code = status_code
        self.reason = reason
        # azure-core records sys.exc_info() at construction; an exception being handled at that
        # moment may carry a response body or a token, so forget it.
        self.exc_type = type(self)
        self.exc_value = None
        self.exc_traceback = None
        self.exc_msg = message
        self.inner_exception = None

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.status_code))


def _rebuild(cls: type[AuthenticationError], message: str, status_code: int | None) -> Any:
    obj = cls.__new__(cls)
    AuthenticationError.__init__(obj, message, status_code=status_code)
    return obj


class CredentialUnavailableError(AuthenticationError):
    """The credential cannot try to authenticate: required data (the environment) is missing.

    Its exit code is CONFIG, like every other "the job's environment is not what azauth needs"
    case; it stays an AuthenticationError so azure-identity's chains move on past it.
    """

    exit_code = ExitCode.CONFIG


class OidcRequestError(AuthenticationError):
    """Azure DevOps did not hand out an OIDC token (step 1).

    Attributes carry the diagnostics Azure DevOps support asks for: ``service_connection_id``,
    ``e2eid`` (``x-vss-e2eid``) and ``msedge_ref`` (``x-msedge-ref``).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        service_connection_id: str | None = None,
        e2eid: str | None = None,
        msedge_ref: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.service_connection_id = service_connection_id
        self.e2eid = e2eid
        self.msedge_ref = msedge_ref
        self.retryable = retryable


class EntraError(AuthenticationError):
    """Microsoft Entra refused the token request (step 2).

    Attributes: ``error`` (OAuth error code), ``error_codes`` (AADSTS numbers),
    ``description``, ``correlation_id``, ``trace_id``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        error_codes: tuple[int, ...] = (),
        description: str | None = None,
        correlation_id: str | None = None,
        trace_id: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.error = error  # type: ignore[assignment]  # azure-core types it as ODataV4Format
        self.error_codes = error_codes
        self.description = description
        self.correlation_id = correlation_id
        self.trace_id = trace_id
        self.retryable = retryable


class TransportError(AuthenticationError):
    """The network failed (connection refused, TLS, timeout) and retries did not help."""

    retryable = True


class ProxyAuthenticationError(TransportError):
    """The proxy refused authentication (407): retrying with the same credentials cannot help."""

    retryable = False


def _make_unavailable_class() -> type[CredentialUnavailableError]:
    """Build CredentialUnavailableError, also an azure-identity one when that package is loaded.

    azure-identity's ``ChainedTokenCredential`` moves on only for *its* CredentialUnavailableError.
    Importing azure-identity ourselves would cost a few hundred milliseconds and a dependency, so
    the class joins azure-identity's hierarchy only when the application already imported it.
    """
    identity = sys.modules.get("azure.identity")
    bases: tuple[type, ...] = (CredentialUnavailableError,)
    if identity is not None and hasattr(identity, "CredentialUnavailableError"):
        bases = (CredentialUnavailableError, identity.CredentialUnavailableError)
    return type("CredentialUnavailableError", bases, {"__module__": __name__})


_unavailable_classes: dict[bool, type[CredentialUnavailableError]] = {}


def credential_unavailable(message: str) -> CredentialUnavailableError:
    """Return a CredentialUnavailableError that azure-identity's chains recognise when loaded."""
    key = "azure.identity" in sys.modules
    cls = _unavailable_classes.get(key)
    if cls is None:
        cls = _make_unavailable_class()
        _unavailable_classes[key] = cls
    return cls(message)


class NoUsableLifeError(AuthenticationError):
    """A token arrived with no usable life left (``expires_in`` <= 0, ``exp`` already past).

    It is never written over an output; trying again later can help (``retryable``).
    """

    retryable = True
