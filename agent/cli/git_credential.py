"""``azauth git-credential get|store|erase``: a git credential helper minting Azure Repos tokens.

git runs the helper with an operation and writes ``key=value`` lines on its stdin
(:func:`agent.credential_helpers.protocols.parse_git_credential`).

- ``get`` answers an Entra access token for Azure DevOps (scope
  ``499b84ac-1321-427f-aa17-267ca6975798/.default`` unless ``--scope`` says otherwise): as
  ``username``/``password``/``password_expiry_utc``, or, when git announces
  ``capability[]=authtype`` (git 2.46+), as ``authtype=Bearer`` + ``credential``. It answers for
  whatever host git asks about: scope the helper to a URL in git's configuration
  (``credential.https://dev.azure.com.helper``). A token is never sent over plain http, except
  to a loopback host.
- ``store`` does nothing: the token is already in azauth's cache.
- ``erase`` (git calls it when the server refused the credential) drops the cache entry when it
  holds exactly the refused token, so the next ``get`` asks Entra for a new one.
- Other operations are ignored, as the protocol asks of helpers.

Tokens come from the cache shared with ``azauth token``; a warm ``get`` is answered by
:mod:`agent.credential_helpers.warm`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from agent.cli.options import add_logging_arguments, configure_logging_from_args
from agent.cli.token import add_token_arguments, obtain, request_from_args
from agent.credential_helpers.protocols import (
    AZURE_REPOS_SCOPE,
    GitCredentialRequest,
    parse_git_credential,
    read_git_credential,
    render_git_credential,
)
from agent.exceptions import AzauthError, ExitCode, UsageError
from agent.urls import host_of, is_loopback_host

__all__ = ["check_destination", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``git-credential`` command."""
    parser = subparsers.add_parser(
        "git-credential",
        help="git credential helper: Entra tokens for Azure Repos",
        description=(
            "A git credential helper. Configure it with: git config --global "
            "credential.https://dev.azure.com.helper '!azauth git-credential'. get answers an "
            "Entra access token for Azure DevOps; store does nothing; erase forgets a refused "
            "token."
        ),
    )
    parser.add_argument(
        "operation",
        metavar="OPERATION",
        help="get, store or erase (git appends it); other operations are ignored",
    )
    add_token_arguments(parser, default_scope=f"default: {AZURE_REPOS_SCOPE}")
    add_logging_arguments(parser)
    parser.set_defaults(handler=run)


def check_destination(request: GitCredentialRequest) -> None:
    """Refuse to hand a token for anything but https, or http to a loopback host.

    Raises:
        UsageError: git asks for a plain-http (or other protocol) destination elsewhere.
    """
    protocol = request.protocol
    if protocol == "https":
        return
    host = request.host or ""
    if protocol == "http" and is_loopback_host(host_of(host)):
        return
    shown = f"{protocol}://{host}" if protocol else host or "an unnamed host"
    raise UsageError(
        f"refusing to send an access token to {shown}: only https, or http to a loopback host"
    )


def run(args: argparse.Namespace) -> int:
    """Carry out one helper operation; return 0 (failures of ``get`` raise)."""
    configure_logging_from_args(args)
    # Read git's request whatever the operation, so git never writes to a closed pipe.
    text = read_git_credential(sys.stdin)
    operation = args.operation
    if operation not in {"get", "erase"}:
        return ExitCode.OK
    if not text.strip():
        raise UsageError(
            f"git-credential {operation}: no request on standard input (git writes "
            "`protocol=...` and `host=...` lines there; run it through git's credential.helper)"
        )
    try:
        request = parse_git_credential(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from agent.credential_helpers.service import forget_token  # noqa: PLC0415

    token_request = request_from_args(args, default_scope=AZURE_REPOS_SCOPE)
    if operation == "erase":
        refused = request.attributes.get("password") or request.attributes.get("credential")
        if refused and not args.no_cache:
            # erase follows a refusal git already reports; an error of ours would only add noise.
            with contextlib.suppress(AzauthError):
                forget_token(token_request, os.environ, refused)
        return ExitCode.OK
    check_destination(request)
    details = obtain(token_request, os.environ, use_cache=not args.no_cache)
    sys.stdout.write(render_git_credential(details, authtype=request.wants_authtype))
    sys.stdout.flush()
    return ExitCode.OK
