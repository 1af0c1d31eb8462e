"""Azure Artifacts feed URLs: parse them, derive each client's endpoint, route a URL to a feed.

PURE and stdlib only: the keyring backend imports this module in every ``pip``/``twine``/``uv``
process that loads keyring.

URL shapes (Azure Artifacts documentation, "Connect to feed" pages):

``https://pkgs.dev.azure.com/{organization}[/{project}]/_packaging/{feed}[@{view}]/...``
    the current host; project-scoped feeds have the project segment.
``https://{organization}.pkgs.visualstudio.com[/{project}]/_packaging/{feed}/...``
    the legacy host; the organization is the first label of the host.

Below a feed, each client has its endpoint: ``pypi/simple/`` (pip, uv), ``pypi/upload/``
(twine), ``npm/registry/`` (npm, whose credentials are also keyed on ``npm/``),
``nuget/v3/index.json`` (NuGet) and ``maven/v1`` (Maven, Gradle).

A profile lists *feed URLs* (down to ``_packaging/{feed}``) or *organization URLs*
(``https://pkgs.dev.azure.com/{organization}``). Any other host named by a profile's URL is a
*profile-added host* (a proxy in front of Azure Artifacts, a loopback emulator): it is read with
the ``pkgs.dev.azure.com`` path layout. Plain ``http`` is accepted only for loopback hosts.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from agent.urls import (
    PLAIN_HTTP_REFUSED,
    first_control_character,
    host_problem,
    is_loopback_host,
    is_tls_or_loopback,
)

# Neither typing nor collections.abc at run time (see agent/credential_helpers/warm.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "AZURE_DEVOPS_SCOPE",
    "DEV_AZURE_HOST",
    "LEGACY_HOST_SUFFIX",
    "FeedLocation",
    "parse_feed_url",
    "route",
]

AZURE_DEVOPS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"
"""The Entra scope of Azure DevOps (Azure Artifacts included), the same in every tenant."""

DEV_AZURE_HOST = "pkgs.dev.azure.com"
LEGACY_HOST_SUFFIX = ".pkgs.visualstudio.com"
_PACKAGING = "_packaging"
FEED_URL_EXPECTED = (
    "an Azure Artifacts feed URL such as https://pkgs.dev.azure.com/ORG/PROJECT/_packaging/FEED, "
    "or an organization URL such as https://pkgs.dev.azure.com/ORG (https only; http only for "
    "loopback hosts)"
)


class FeedLocation:
    """Where a feed (or an organization's feeds) lives; immutable by convention.

    Attributes:
        scheme: ``https`` (``http`` only for loopback hosts).
        netloc: host and port, lowercase, without user information.
        organization: the Azure DevOps organization.
        project: the project of a project-scoped feed, else ``None``.
        feed: the feed name (with ``@view`` when given), ``None`` for an organization URL.
        path: the URL path down to the feed (or organization), without a trailing slash.
    """

    # A plain class, not a dataclass (whose import pulls inspect): every pip/twine/uv process
    # that loads the keyring backend imports this module.
    __slots__ = ("feed", "netloc", "organization", "path", "project", "scheme")

    def __init__(
        self,
        *,
        scheme: str,
        netloc: str,
        organization: str,
        project: str | None,
        feed: str | None,
        path: str,
    ) -> None:
        self.scheme = scheme
        self.netloc = netloc
        self.organization = organization
        self.project = project
        self.feed = feed
        self.path = path

    def __repr__(self) -> str:
        return f"FeedLocation({self.url!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeedLocation):
            return NotImplemented
        return self.url == other.url

    def __hash__(self) -> int:
        return hash(self.url)

    @property
    def url(self) -> str:
        """The feed's (or organization's) URL, without a trailing slash."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    @property
    def legacy_host(self) -> bool:
        """Whether the organization is named by the host (``ORG.pkgs.visualstudio.com``)."""
        return self.netloc.endswith(LEGACY_HOST_SUFFIX)

    def endpoint(self, suffix: str) -> str:
        """The feed URL joined with ``suffix`` (``"pypi/simple/"``, ``"npm/registry/"``...).

        Raises:
            ValueError: this is an organization URL, which has no client endpoints.
        """
        if self.feed is None:
            raise ValueError(f"{self.url} names an organization, not a feed")
        return f"{self.url}/{suffix}"

    @property
    def pypi_simple(self) -> str:
        """The PEP 503 index URL (pip ``--index-url``, uv ``[[tool.uv.index]] url``)."""
        return self.endpoint("pypi/simple/")

    @property
    def pypi_upload(self) -> str:
        """The upload URL (twine ``--repository-url``)."""
        return self.endpoint("pypi/upload/")

    @property
    def npm_registry(self) -> str:
        """The npm registry URL."""
        return self.endpoint("npm/registry/")

    @property
    def nuget_index(self) -> str:
        """The NuGet v3 service index."""
        return self.endpoint("nuget/v3/index.json")

    @property
    def maven_repository(self) -> str:
        """The Maven repository URL."""
        return self.endpoint("maven/v1")

    def covers(self, scheme: str | None, netloc: str, path: str) -> int:
        """How specifically this location covers a URL: 2 feed, 1 organization, 0 not at all.

        ``scheme`` ``None`` means "a bare host" (pip and uv also ask for the host alone): it
        is covered at organization level by every location on that host.
        """
        if netloc != self.netloc or (scheme is not None and scheme != self.scheme):
            return 0
        if scheme is None:
            return 1
        if self.feed is not None and _under(path, self.path):
            return 2
        organization_path = "" if self.legacy_host else f"/{self.organization}"
        return 1 if _under(path, organization_path) else 0


def _under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, on a segment boundary (case-insensitive)."""
    path, prefix = path.lower(), prefix.lower()
    return path == prefix or path.startswith(prefix + "/") or prefix == ""


_DEFAULT_PORTS = {"https": 443, "http": 80, None: 443}


def _netloc(scheme: str | None, host: str, port: int | None) -> str:
    """``host[:port]`` as locations compare it.

    IPv6 in brackets, the scheme's default port left out (``https://h:443/`` is
    ``https://h/``; a bare host's default is https').
    """
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    return netloc


def _has_dot_segment(path: str) -> bool:
    """Whether ``path`` has a ``.`` or ``..`` segment (also percent-encoded) or a backslash.

    Clients and servers resolve those, so the prefix the URL seems to be below is not where
    the request goes.
    """
    decoded = unquote(path)
    return "\\" in decoded or any(segment in {".", ".."} for segment in decoded.split("/"))


def _checked_netloc(value: str) -> tuple[str, str, str, str]:
    """``(scheme, host, netloc, path)`` of a feed URL after the checks every feed URL needs."""
    text = value.strip()
    if first_control_character(text) is not None:
        # urlsplit drops tabs and line breaks silently; XML and npmrc cannot hold the rest
        raise ValueError("a URL holds no spaces or control characters")
    try:
        parts = urlsplit(text)
    except ValueError:  # an unclosed "[" of an IPv6 address
        raise ValueError("the host is not valid") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in {"https", "http"} or not host:
        raise ValueError("not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a feed URL holds no user name or password (secrets never go in URLs)")
    if parts.query or parts.fragment:
        raise ValueError("a feed URL has no query or fragment")
    if not is_tls_or_loopback(scheme, host):
        raise ValueError(PLAIN_HTTP_REFUSED)
    problem = host_problem(host)  # the authority's rule: no look-alike host gets a token
    if problem is not None:
        raise ValueError(problem)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number between 0 and 65535") from None
    if _has_dot_segment(parts.path):
        raise ValueError("a feed URL has no '.' or '..' path segments")
    return scheme, host, _netloc(scheme, host, port), parts.path


def parse_feed_url(value: str) -> FeedLocation:
    """Parse a feed or organization URL (any client endpoint below a feed is accepted).

    Raises:
        ValueError: with the reason, when ``value`` is not such a URL.
    """
    scheme, host, netloc, raw_path = _checked_netloc(value)
    segments = [segment for segment in raw_path.split("/") if segment]
    legacy = host.endswith(LEGACY_HOST_SUFFIX)
    if legacy:
        organization = host[: -len(LEGACY_HOST_SUFFIX)]
        rest = segments
        if not organization or "." in organization:
            raise ValueError(f"no organization in the host {host!r}")
    else:
        if not segments or segments[0] == _PACKAGING:
            raise ValueError("the path does not start with an organization")
        organization, rest = segments[0], segments[1:]
    base = [] if legacy else [organization]
    project = feed = None
    if rest:
        if rest[0] != _PACKAGING:
            project, rest = rest[0], rest[1:]
            base.append(project)
        if len(rest) < 2 or rest[0] != _PACKAGING:
            raise ValueError("expected /_packaging/FEED after the organization (and project)")
        feed = rest[1]
        base += [_PACKAGING, feed]
    return FeedLocation(
        scheme=scheme,
        netloc=netloc,
        organization=organization,
        project=project,
        feed=feed,
        path="".join(f"/{segment}" for segment in base),
    )


def split_service(service: str) -> tuple[str | None, str, str] | None:
    """Split what a keyring caller names (a URL or a bare ``host[:port]``).

    Returns ``(scheme, netloc, path)`` with ``scheme`` ``None`` for a bare host, or ``None``
    when the service is not something azauth answers for (another scheme, plain http to a
    host that is not loopback, no host, a ``.``/``..`` path segment). The scheme's default
    port is left out of ``netloc``.
    """
    text = service.strip()
    if "://" not in text:
        text = f"//{text}"
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    scheme: str | None = parts.scheme.lower() or None
    if scheme not in {None, "https", "http"}:
        return None
    if scheme == "http" and not is_loopback_host(host):
        return None
    if _has_dot_segment(parts.path):
        return None  # resolved elsewhere than it looks: never routed
    return scheme, _netloc(scheme, host, port), parts.path.rstrip("/")


def route(service: str, locations: Iterable[tuple[FeedLocation, str]]) -> str | None:
    """Return the value (a connection name) of the location covering ``service`` best, or ``None``.

    A feed URL at or above ``service`` wins; otherwise the organization's: when every listed
    location of that organization (or, for a bare host, of that host) has the same value, that
    value, else ``None`` (ambiguous). A bare host on plain http is answered only for loopback
    hosts.
    """
    split = split_service(service)
    if split is None:
        return None
    scheme, netloc, path = split
    if scheme is None and not is_loopback_host(netloc.rsplit(":", 1)[0]):
        # A bare host could be asked for over http as well; only https locations answer it.
        pairs = [(loc, value) for loc, value in locations if loc.scheme == "https"]
    else:
        pairs = list(locations)
    best: list[tuple[FeedLocation, str]] = []
    best_level = 0
    for location, value in pairs:
        level = location.covers(scheme, netloc, path)
        if level == 2 and best_level == 2:
            # Nested feeds cannot exist; the longer path is the more specific.
            if len(location.path) > len(best[0][0].path):
                best = [(location, value)]
        elif level > best_level:
            best, best_level = [(location, value)], level
        elif level and level == best_level:
            best.append((location, value))
    if not best:
        return None
    values = {value for _, value in best}
    return best[0][1] if len(values) == 1 else None
