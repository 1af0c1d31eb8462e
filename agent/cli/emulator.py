"""``azauth emulator``: serve the offline Azure DevOps + Entra emulator until interrupted.

stdout carries only ``export NAME='value'`` lines (paste them, or ``eval "$(…)"`` a background
run's output); status and one line per request go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent import envvars
from agent.cli import numbers
from agent.exceptions import ExitCode, UsageError
from agent.urls import loopback_bind_address

if TYPE_CHECKING:
    from agent.testing.emulator import Emulator, RecordedRequest

__all__ = ["parse_registration", "register", "render_exports", "run"]


def register(subparsers: Any) -> None:
    """Add the ``emulator`` command to ``subparsers``."""
    parser = subparsers.add_parser(
        "emulator",
        help="serve an offline emulator of the Azure DevOps OIDC and Entra token endpoints",
        description=(
            "Serve Azure DevOps' oidctoken endpoint and Microsoft Entra's token endpoint on "
            "loopback, for trying azauth (or any Azure SDK credential) without Azure. Prints "
            "the export lines to use on stdout and serves until SIGINT/SIGTERM."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=numbers.port, default=0, help="port (default 0: any free port)"
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve https with a throwaway CA (SSL_CERT_FILE)"
    )
    parser.add_argument(
        "--latency",
        type=numbers.seconds(),
        default=0.0,
        metavar="SECONDS",
        help="delay before each answer",
    )
    parser.add_argument(
        "--oidc-lifetime",
        type=numbers.count(1, 86400),
        default=300,
        metavar="SECONDS",
        help="OIDC token lifetime",
    )
    parser.add_argument(
        "--token-lifetime",
        type=numbers.count(1, 86400),
        default=3599,
        metavar="SECONDS",
        help="access token expires_in",
    )
    parser.add_argument(
        "--trust-any-app",
        action="store_true",
        help="accept any service connection, tenant and client (signatures still verified)",
    )
    parser.add_argument(
        "--issuer",
        choices=("devops", "entra"),
        default="devops",
        help="issuer of OIDC tokens: Azure DevOps (default) or Microsoft Entra",
    )
    parser.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="TENANT:CLIENT:SERVICE_CONNECTION_ID",
        help="register a working service connection (repeatable)",
    )
    parser.set_defaults(handler=run)


def parse_registration(value: str) -> tuple[str, str, str]:
    """Split ``TENANT:CLIENT:SERVICE_CONNECTION_ID``; raise UsageError when malformed."""
    parts = value.split(":")
    if len(parts) != 3 or not all(part.strip() for part in parts):
        raise UsageError(
            f"--register {value!r}: expected TENANT:CLIENT:SERVICE_CONNECTION_ID (three non-empty "
            "parts separated by ':')"
        )
    tenant, client, connection = (part.strip() for part in parts)
    return tenant, client, connection


def _check_loopback(host: str) -> None:
    if loopback_bind_address(host) is None:
        raise UsageError(
            f"--host {host}: the emulator only listens on loopback (127.0.0.1, ::1, localhost); "
            "it hands out tokens to anyone who asks"
        )


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def render_exports(values: Sequence[tuple[str, str]]) -> str:
    """POSIX shell ``export NAME='value'`` lines, one per pair, newline-terminated."""
    return "".join(f"export {name}={_quote(value)}\n" for name, value in values)


def _exports(emu: Emulator, registrations: Sequence[tuple[str, str, str]]) -> list[tuple[str, str]]:
    values = [
        (envvars.SYSTEM_OIDCREQUESTURI, emu.oidc_request_uri),
        (envvars.SYSTEM_ACCESSTOKEN, emu.system_access_token),
        (envvars.AZURE_AUTHORITY_HOST, emu.authority),
    ]
    if emu.ca_file:
        values.append((envvars.SSL_CERT_FILE, emu.ca_file))
    if registrations:
        tenant, client, connection = registrations[0]
        values += [
            (envvars.AZURESUBSCRIPTION_TENANT_ID, tenant),
            (envvars.AZURESUBSCRIPTION_CLIENT_ID, client),
            (envvars.AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, connection),
        ]
    return values


def _print_request(record: RecordedRequest) -> None:
    status = "dropped" if record.status is None else str(record.status)
    print(f"azauth emulator: {record.endpoint} {record.method} -> {status}", file=sys.stderr)


async def _serve(args: argparse.Namespace, registrations: list[tuple[str, str, str]]) -> int:
    # Imported here so that `azauth --help` does not pay for them.
    import asyncio  # noqa: PLC0415

    from agent.cli.options import install_stop_signals  # noqa: PLC0415
    from agent.testing.emulator import Emulator  # noqa: PLC0415

    emu = Emulator(
        latency=args.latency,
        oidc_lifetime=args.oidc_lifetime,
        token_lifetime=args.token_lifetime,
        trust_any_app=args.trust_any_app,
        issuer=args.issuer,
    )
    for tenant, client, connection in registrations:
        emu.add_connection(connection, tenant, client)
    emu.observer = _print_request

    stop = asyncio.Event()
    install_stop_signals(stop)

    try:
        await emu.start(args.host, args.port, tls=args.tls)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    try:
        sys.stdout.write(render_exports(_exports(emu, registrations)))
        sys.stdout.flush()
        print(
            f"azauth emulator: serving Azure DevOps OIDC and Entra token endpoints at {emu.url} "
            f"({len(registrations)} connection(s) registered); stop with Ctrl-C",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        await emu.close()
    print("azauth emulator: stopped", file=sys.stderr)
    return ExitCode.OK


def run(args: argparse.Namespace) -> int:
    """Handler of ``azauth emulator``."""
    _check_loopback(args.host)
    registrations = [parse_registration(value) for value in args.register]
    try:
        import cryptography  # noqa: F401, PLC0415 - only the emulator needs it
    except ImportError:
        raise UsageError(
            "the emulator needs the 'cryptography' package: pip install cryptography (or the "
            "emulator extra: pip install '.[emulator]' in a checkout of azauth)"
        ) from None
    import asyncio  # noqa: PLC0415 - see _serve

    return asyncio.run(_serve(args, registrations))
