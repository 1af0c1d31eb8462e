"""The run report and the summary table, shared by ``azauth run``, ``azauth exec`` and ``status``.

:class:`RunReport` holds what a runner's connections hold (tokens, outputs delivered, the last
error); :func:`render_summary` draws it as the table ``run`` and ``exec`` print on stderr;
:func:`combined_exit_code` is the one rule turning per-connection outcomes into an exit code
(``run``, ``exec`` and ``status --check`` alike). Rendering never shows a token: error cells
are server text (redacted, one line, capped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent._secrets import server_text
from agent.exceptions import ExitCode

if TYPE_CHECKING:
    from azure.core.credentials import AccessTokenInfo

    from agent.credential import OidcToken
    from agent.exceptions import AzauthError
    from agent.refresh import ItemState

__all__ = [
    "ConnectionReport",
    "RunReport",
    "combined_exit_code",
    "format_delta",
    "render_summary",
    "summary_rows",
]


@dataclass
class ConnectionReport:
    """What happened to one connection: tokens held, files written, the last error."""

    name: str
    tokens: dict[str, AccessTokenInfo] = field(default_factory=dict)
    oidc: OidcToken | None = None
    acquired: dict[str, float] = field(default_factory=dict)  # item key -> when (epoch)
    delivered: dict[str, list[str]] = field(default_factory=dict)  # item key -> outputs
    written: list[str] = field(default_factory=list)
    error: AzauthError | None = None
    expected_outputs: int = 0
    items: dict[str, ItemState] = field(default_factory=dict)  # item key -> engine state

    @property
    def ok(self) -> bool:
        """True when no error is outstanding and every output was delivered."""
        return self.error is None


def combined_exit_code(failed: Iterable[int], total: int) -> ExitCode:
    """OK when nothing failed; PARTIAL when some of ``total`` did; else the failures' common code.

    ``failed``: the exit code of each failed connection. Failures with different codes: AUTH.
    """
    codes = list(failed)
    if not codes:
        return ExitCode.OK
    if len(codes) < total:
        return ExitCode.PARTIAL
    distinct = set(codes)
    return ExitCode(distinct.pop()) if len(distinct) == 1 else ExitCode.AUTH


@dataclass
class RunReport:
    """The outcome of a run: one report per connection."""

    connections: list[ConnectionReport]
    monotonic: float | None = None  # the engine's clock when the report was taken

    @property
    def exit_code(self) -> ExitCode:
        """OK; PARTIAL when some connections delivered; else the failures' common code."""
        failed = [c.error.exit_code for c in self.connections if c.error is not None]
        return combined_exit_code(failed, len(self.connections))


def summary_rows(report: RunReport, now: float) -> list[tuple[str, str, str, str]]:
    """Rows of the summary table: connection, scope, expires in, outputs written (or error).

    Expiry is counted on the engine's monotonic clock when the report has it (a skewed wall
    clock does not change it), else from ``now`` (epoch seconds).
    """
    rows: list[tuple[str, str, str, str]] = []
    for conn in report.connections:
        for key, state in conn.items.items():
            scope = "(OIDC token)" if key == "oidc" else key
            held = state.held
            if held is None:
                expires = "-"
            elif report.monotonic is not None:
                expires = format_delta(held.expires - report.monotonic)
            else:
                expires = format_delta(float(getattr(held.value, "expires_on", now) or now) - now)
            outputs = ", ".join(conn.delivered.get(key, [])) or "-"
            if state.error is not None:
                stale = " (outputs hold the last good token)" if held is not None else ""
                outputs = f"FAILED{stale}: {state.error}"
            rows.append((conn.name, scope, expires, outputs))
        if conn.delivered.get(""):  # outputs that carry no token (docker_config credHelpers)
            rows.append((conn.name, "-", "-", ", ".join(conn.delivered[""])))
        if conn.error is not None and not conn.items:
            rows.append((conn.name, "-", "-", f"FAILED: {conn.error}"))
    return rows


def render_summary(report: RunReport, now: float) -> str:
    """The summary table as text, for stderr."""
    # Each cell is shown as server text (redacted, one line, capped): error cells quote servers.
    rows: list[tuple[str, ...]] = [("CONNECTION", "SCOPE", "EXPIRES IN", "OUTPUTS")]
    rows += [
        tuple(server_text(cell, limit=1000) for cell in row) for row in summary_rows(report, now)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def format_delta(seconds: float, *, short: bool = True) -> str:
    """A duration as ``1h05m``, ``4m09s`` or ``9s`` (``short=False``: ``0m09s``); ``expired``.

    Seconds are truncated toward zero first.
    """
    seconds = int(seconds)
    if seconds < 0:
        return "expired"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes or not short:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
