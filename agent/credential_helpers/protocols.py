"""Pure renderers and parsers of the credential-process protocols azauth speaks on stdout.

Formats of ``azauth token --output``:

- ``raw``: the access token and a newline;
- ``json``: every field azauth knows about the token (see :func:`render_json`);
- ``azure-cli``: the JSON of ``az account get-access-token``, which azure-identity's
  ``AzureCliCredential`` and other tools that shell out to ``az`` parse;
- ``exec-credential``: a Kubernetes client-go ``ExecCredential`` (kubectl's exec plugins).

And the git credential helper protocol (``azauth git-credential``): :func:`parse_git_credential`
reads what git sends, :func:`render_git_credential` writes the answer.

Stdlib only and free of I/O: the warm ``azauth token`` path (:mod:`agent.credential_helpers.warm`)
renders with these functions without importing anything heavy. Records are plain classes with
``__slots__``: dataclasses or ``NamedTuple`` would import ``inspect``, ``ast`` or ``typing``,
milliseconds on every call. Problems are reported as :class:`ValueError`;
the command line turns them into usage errors. No message ever contains a token.
"""

from __future__ import annotations

import json
import time

# Neither typing nor collections.abc at run time: a warm call must not pay for importing them.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Protocol

    class SupportsReadline(Protocol):
        """A text stream (``sys.stdin``)."""

        def readline(self) -> str:
            """One line, with its newline; ``""`` at the end."""
            ...


__all__ = [
    "AZURE_REPOS_SCOPE",
    "EXEC_CREDENTIAL_VERSIONS",
    "EXEC_INFO_ENV",
    "GIT_USERNAME",
    "OUTPUT_FORMATS",
    "GitCredentialRequest",
    "TokenDetails",
    "exec_credential_version",
    "parse_git_credential",
    "read_git_credential",
    "render",
    "render_azure_cli",
    "render_exec_credential",
    "render_git_credential",
    "render_json",
    "render_raw",
    "rfc3339",
]

OUTPUT_FORMATS: tuple[str, ...] = ("raw", "json", "azure-cli", "exec-credential")
"""The values of ``azauth token --output``; the first is the default."""

EXEC_INFO_ENV = "KUBERNETES_EXEC_INFO"
"""The variable client-go sets for exec plugins: a JSON ``ExecCredential`` (spec only)."""

_EXEC_GROUP = "client.authentication.k8s.io"
EXEC_CREDENTIAL_VERSIONS: tuple[str, ...] = (f"{_EXEC_GROUP}/v1", f"{_EXEC_GROUP}/v1beta1")
"""The ``ExecCredential`` API versions azauth writes; the first is the default."""

AZURE_REPOS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"
"""Azure DevOps' Entra resource (tenant-invariant): the default scope of ``git-credential``."""

GIT_USERNAME = "azauth"
"""The user name answered to git: Azure Repos ignores it when the password is an Entra token."""

_GIT_AUTHTYPE = "authtype"


class TokenDetails:
    """An access token and everything azauth knows about it (treat as immutable).

    Attributes:
        access_token: the token (hidden from ``repr``).
        token_type: ``Bearer`` from Entra.
        expires_on: expiry, in seconds since the epoch.
        tenant: the tenant the token was issued in.
        scopes: the scopes it was requested for.
        client_id: the application (client) id of the service connection.
        subscription: the connection's subscription id, when configured.
        connection: the connection's name in the profile file.
        profile: the profile's name.
    """

    __slots__ = (
        "access_token",
        "client_id",
        "connection",
        "expires_on",
        "profile",
        "scopes",
        "subscription",
        "tenant",
        "token_type",
    )

    def __init__(
        self,
        *,
        access_token: str,
        token_type: str,
        expires_on: int,
        tenant: str,
        scopes: tuple[str, ...],
        client_id: str,
        subscription: str | None,
        connection: str,
        profile: str,
    ) -> None:
        self.access_token = access_token
        self.token_type = token_type
        self.expires_on = expires_on
        self.tenant = tenant
        self.scopes = scopes
        self.client_id = client_id
        self.subscription = subscription
        self.connection = connection
        self.profile = profile

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TokenDetails):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable slots: not hashable

    def __repr__(self) -> str:
        return (
            f"TokenDetails(access_token='***', expires_on={self.expires_on}, "
            f"tenant={self.tenant!r}, scopes={self.scopes!r}, connection={self.connection!r}, "
            f"profile={self.profile!r})"
        )


def rfc3339(epoch: float) -> str:
    """Return ``epoch`` as an RFC 3339 UTC timestamp with a ``Z`` suffix, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def render_raw(details: TokenDetails) -> str:
    """The token and a newline."""
    return f"{details.access_token}\n"


def render_json(details: TokenDetails) -> str:
    """Every field, as an indented JSON object.

    Keys: ``token``, ``token_type``, ``expires_on`` (epoch seconds), ``expires_at`` (RFC 3339
    UTC), ``tenant``, ``scope`` (space-separated), ``client_id``, ``subscription`` (``null`` when
    unknown), ``connection``, ``profile``.
    """
    document = {
        "token": details.access_token,
        "token_type": details.token_type,
        "expires_on": details.expires_on,
        "expires_at": rfc3339(details.expires_on),
        "tenant": details.tenant,
        "scope": " ".join(details.scopes),
        "client_id": details.client_id,
        "subscription": details.subscription,
        "connection": details.connection,
        "profile": details.profile,
    }
    return json.dumps(document, indent=2) + "\n"


def render_azure_cli(
    details: TokenDetails, *, localtime: Callable[[float], time.struct_time] = time.localtime
) -> str:
    """The JSON of ``az account get-access-token``.

    ``expiresOn`` is the local time ``az`` prints (``YYYY-MM-DD HH:MM:SS.ffffff``, no zone);
    ``expires_on`` is the epoch, which azure-identity prefers (Azure CLI 2.54+). ``subscription``
    is present only when the connection names one, as with ``az``. ``localtime`` converts epoch
    seconds to local time (injectable for tests).
    """
    local = time.strftime("%Y-%m-%d %H:%M:%S", localtime(details.expires_on))
    document: dict[str, object] = {
        "accessToken": details.access_token,
        "expiresOn": f"{local}.000000",
        "expires_on": details.expires_on,
    }
    if details.subscription:
        document["subscription"] = details.subscription
    document["tenant"] = details.tenant
    document["tokenType"] = details.token_type
    return json.dumps(document, indent=2) + "\n"


def exec_credential_version(exec_info: str | None) -> str:
    """Return the ``ExecCredential`` API version to answer, from ``KUBERNETES_EXEC_INFO``.

    Absent or empty: ``client.authentication.k8s.io/v1``. Otherwise the JSON's ``apiVersion``,
    which must be one of :data:`EXEC_CREDENTIAL_VERSIONS`.

    Raises:
        ValueError: the variable is not a JSON object, or asks for an unsupported version.
    """
    if not exec_info or not exec_info.strip():
        return EXEC_CREDENTIAL_VERSIONS[0]
    try:
        document = json.loads(exec_info)
    except ValueError:
        raise ValueError(f"{EXEC_INFO_ENV} is not valid JSON") from None
    if not isinstance(document, dict):
        raise ValueError(f"{EXEC_INFO_ENV} is not a JSON object")  # noqa: TRY004 - like the rest
    version = document.get("apiVersion")
    if version is None or version == "":
        return EXEC_CREDENTIAL_VERSIONS[0]
    if version not in EXEC_CREDENTIAL_VERSIONS:
        raise ValueError(
            f"{EXEC_INFO_ENV} asks for ExecCredential apiVersion {version!r}; azauth writes "
            f"{' and '.join(EXEC_CREDENTIAL_VERSIONS)} (set apiVersion in the kubeconfig's "
            "exec entry to one of them)"
        )
    return str(version)


def render_exec_credential(details: TokenDetails, api_version: str) -> str:
    """A Kubernetes ``ExecCredential`` with ``status.token`` and ``status.expirationTimestamp``.

    Raises:
        ValueError: ``api_version`` is not one of :data:`EXEC_CREDENTIAL_VERSIONS`.
    """
    if api_version not in EXEC_CREDENTIAL_VERSIONS:
        raise ValueError(f"unsupported ExecCredential apiVersion {api_version!r}")
    document = {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {
            "token": details.access_token,
            "expirationTimestamp": rfc3339(details.expires_on),
        },
    }
    return json.dumps(document, separators=(",", ":")) + "\n"


def render(output: str, details: TokenDetails, env: Mapping[str, str]) -> str:
    """Render ``details`` in ``output`` format (one of :data:`OUTPUT_FORMATS`).

    ``env`` is read for ``KUBERNETES_EXEC_INFO`` (``exec-credential`` only).

    Raises:
        ValueError: unknown format, or an unusable ``KUBERNETES_EXEC_INFO``.
    """
    if output == "raw":
        return render_raw(details)
    if output == "json":
        return render_json(details)
    if output == "azure-cli":
        return render_azure_cli(details)
    if output == "exec-credential":
        return render_exec_credential(details, exec_credential_version(env.get(EXEC_INFO_ENV)))
    raise ValueError(f"unknown output format {output!r}; expected one of {OUTPUT_FORMATS}")


# ------------------------------------------------------------------------------------------------
# git credential helper protocol


class GitCredentialRequest:
    """What git sent on a helper's stdin.

    Attributes:
        attributes: single-valued attributes (``protocol``, ``host``, ``path``, ``username``...),
            the last value of each.
        lists: multi-valued attributes (``capability[]``, ``wwwauth[]``...) by name without
            ``[]``; an empty value resets the list, as the protocol says.
    """

    __slots__ = ("attributes", "lists")

    def __init__(self, attributes: dict[str, str], lists: dict[str, list[str]]) -> None:
        self.attributes = attributes
        self.lists = lists

    def __repr__(self) -> str:
        # Never the attributes: git may have sent a password.
        return f"GitCredentialRequest(protocol={self.protocol!r}, host={self.host!r})"

    @property
    def protocol(self) -> str | None:
        """``https``, ``http``..., if given."""
        return self.attributes.get("protocol")

    @property
    def host(self) -> str | None:
        """The host, with ``:port`` when git gave one."""
        return self.attributes.get("host")

    @property
    def capabilities(self) -> frozenset[str]:
        """What git announced with ``capability[]`` (git 2.46+: ``authtype``, ``state``)."""
        return frozenset(self.lists.get("capability", ()))

    @property
    def wants_authtype(self) -> bool:
        """Whether git understands ``authtype``/``credential`` answers."""
        return _GIT_AUTHTYPE in self.capabilities


def read_git_credential(stream: SupportsReadline) -> str:
    """Read git's request from ``stream``: lines up to a blank line or the end, blank included.

    Reading stops at the blank line, so a caller that keeps its end of the pipe open while it
    waits for the answer is not waited for.
    """
    lines: list[str] = []
    while line := stream.readline():
        lines.append(line)
        if not line.strip("\r\n"):
            break
    return "".join(lines)


def parse_git_credential(text: str) -> GitCredentialRequest:
    """Parse git's ``key=value`` lines up to the first blank line (or the end).

    A ``url`` attribute is broken into ``protocol``, ``host`` and ``path`` when those are not
    given, as git does.

    Raises:
        ValueError: a line has no ``=`` or an empty key.
    """
    attributes: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for raw_line in text.split("\n"):
        line = raw_line.removesuffix("\r")
        if not line:
            break
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise ValueError("git credential input: a line is not key=value")
        if key.endswith("[]"):
            name = key[:-2]
            if value:
                lists.setdefault(name, []).append(value)
            else:
                lists[name] = []
        else:
            attributes[key] = value
    url = attributes.get("url")
    if url:
        _fill_from_url(attributes, url)
    return GitCredentialRequest(attributes, lists)


def _fill_from_url(attributes: dict[str, str], url: str) -> None:
    from urllib.parse import urlsplit  # noqa: PLC0415 - rare: git sends the parts already

    parts = urlsplit(url)
    found = {"protocol": parts.scheme, "host": parts.netloc.rpartition("@")[2]}
    if parts.path.strip("/"):
        found["path"] = parts.path.lstrip("/")
    for key, value in found.items():
        if value:
            attributes.setdefault(key, value)


def render_git_credential(details: TokenDetails, *, authtype: bool) -> str:
    """The answer to ``get``.

    With ``authtype`` (git announced ``capability[]=authtype``, git 2.46+): ``authtype=Bearer``
    and ``credential=<token>``, marked ``ephemeral`` so git does not hand it to storing helpers.
    Otherwise ``username``/``password`` (Azure Repos accepts an Entra token as a Basic password)
    and ``password_expiry_utc`` (git 2.40+ drops an expired password).

    Raises:
        ValueError: the token holds a character the protocol cannot carry.
    """
    token = details.access_token
    if not token or any(char in token for char in "\n\r\0"):
        raise ValueError("the access token cannot be sent through the git credential protocol")
    if authtype:
        lines = [
            f"capability[]={_GIT_AUTHTYPE}",
            "authtype=Bearer",
            f"credential={token}",
            "ephemeral=true",
        ]
    else:
        lines = [
            f"username={GIT_USERNAME}",
            f"password={token}",
            f"password_expiry_utc={details.expires_on}",
        ]
    return "\n".join(lines) + "\n"
