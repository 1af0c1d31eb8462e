"""``azauth token``: print one access token in the format the caller speaks.

Formats (``--output``): ``raw`` (default), ``json``, ``azure-cli`` (``az account
get-access-token``) and ``exec-credential`` (kubectl exec plugins); see
:mod:`agent.credential_helpers.protocols`. Tokens come from the cached-token service
(:mod:`agent.credential_helpers.service`): the shared on-disk cache while they have enough
validity left; concurrent processes that miss it wait for one refresh. A warm call never reaches
this module: :mod:`agent.credential_helpers.warm` answers it. This module is argparse and
presentation only.

On failure the exit code follows the ExitCode table (2 usage, 3 configuration, 4
authentication), one line goes to stderr and nothing to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from agent.cli.options import (
    add_logging_arguments,
    add_profile_arguments,
    configure_logging_from_args,
    connection_flag_error,
)
from agent.credential_helpers.cache import TokenRequest
from agent.credential_helpers.protocols import (
    EXEC_INFO_ENV,
    OUTPUT_FORMATS,
    TokenDetails,
    exec_credential_version,
    render,
)
from agent.exceptions import ExitCode, UsageError

__all__ = ["add_token_arguments", "obtain", "register", "request_from_args", "run"]


def add_token_arguments(parser: argparse.ArgumentParser, *, default_scope: str) -> None:
    """Add the flags that choose a token: config, profile, connection, scope, tenant, cache."""
    add_profile_arguments(
        parser, connection_help="the connection (default: the profile's only connection)"
    )
    parser.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help=f"a scope ending in /.default; repeat for one token for several ({default_scope})",
    )
    parser.add_argument(
        "--tenant",
        metavar="TENANT",
        help="request the token in this tenant (must be allowed by the connection)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="ask Entra for a new token; do not read or write the on-disk cache",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``token`` command."""
    parser = subparsers.add_parser(
        "token",
        help="print an access token (raw, json, azure-cli or a kubectl ExecCredential)",
        description=(
            "Print one access token of a connection on stdout, in the format the caller "
            "speaks. Tokens are shared through an on-disk cache (AZAUTH_CACHE_DIR, else "
            "$XDG_CACHE_HOME/azauth, else ~/.cache/azauth) while they have at least 5 minutes "
            "(or half their lifetime) left."
        ),
    )
    add_token_arguments(parser, default_scope="default: the connection's scope")
    parser.add_argument(
        "--output",
        "-o",
        choices=OUTPUT_FORMATS,
        default=OUTPUT_FORMATS[0],
        help=(
            "raw: the token; json: every field; azure-cli: az account get-access-token's JSON; "
            "exec-credential: a Kubernetes ExecCredential (default: raw)"
        ),
    )
    add_logging_arguments(parser)
    parser.set_defaults(handler=run)


def request_from_args(
    args: argparse.Namespace, *, default_scope: str | None = None
) -> TokenRequest:
    """The :class:`TokenRequest` of parsed token flags (``default_scope`` when none is given)."""
    scopes = tuple(args.scope or ())
    if not scopes and default_scope is not None:
        scopes = (default_scope,)
    return TokenRequest(
        config=args.config,
        profile=args.profile,
        connection=args.connection,
        scopes=scopes,
        tenant=args.tenant,
    )


def obtain(request: TokenRequest, env: Mapping[str, str], *, use_cache: bool) -> TokenDetails:
    """The token of ``request`` from the cached-token service; errors name the flags.

    Raises:
        UsageError, ConfigError, AuthenticationError: as
            :func:`agent.credential_helpers.service.obtain_token`.
    """
    from agent.credential_helpers.service import TokenRequestError, obtain_token  # noqa: PLC0415
    from agent.pool import ConnectionChoiceError  # noqa: PLC0415

    try:
        return obtain_token(request, env, use_cache=use_cache)
    except ConnectionChoiceError as exc:
        raise connection_flag_error(exc) from None
    except TokenRequestError as exc:
        raise UsageError(f"--{exc}") from None  # the message starts with the field: its flag


def run(args: argparse.Namespace) -> int:
    """Print the token; return 0 (failures raise, and ``agent.cli.main`` maps them)."""
    configure_logging_from_args(args)
    env: Mapping[str, str] = os.environ
    if args.output == "exec-credential":
        # Refuse a version we cannot write before spending a token request on it.
        try:
            exec_credential_version(env.get(EXEC_INFO_ENV))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    details = obtain(request_from_args(args), env, use_cache=not args.no_cache)
    try:
        text = render(args.output, details, env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(text)
    sys.stdout.flush()
    return ExitCode.OK
