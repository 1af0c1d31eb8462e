"""Console-script entry point.

Kept tiny on purpose: ``azauth token`` answers from the on-disk cache without importing aiohttp,
pydantic, structlog or azure-core, so this module imports nothing heavy before it knows it must.
A warm ``azauth token`` or ``azauth git-credential get`` is answered by
:mod:`agent.credential_helpers.warm`; everything else, and every miss, runs the full command line
(:mod:`agent.cli.main`).
"""

from __future__ import annotations

import gc
import sys

_FAST_COMMANDS = frozenset({"token", "git-credential"})
# Commands that hold secrets: non-dumpable, no core file (agent._hardening).
_SECRET_COMMANDS = frozenset({"run", "exec", "serve", "token", "git-credential", "status"})
# Long-running commands that start other programs: SYSTEM_ACCESSTOKEN leaves os.environ.
_SCRUBBING_COMMANDS = frozenset({"run", "exec", "serve"})


def docker_credential_main() -> None:
    """Entry point of the ``docker-credential-azauth`` command (the Docker credential helper).

    A warm ``get`` is answered from the on-disk cache with the standard library only.
    """
    from agent._standalone import mark_command  # noqa: PLC0415
    from agent._stdio import guard_standard_streams, quiet_broken_pipe  # noqa: PLC0415

    mark_command()  # before anything imports agent.exceptions: no azure-core (agent._azure_core)
    guard_standard_streams()  # `<&-` / `>&-`: /dev/null rather than an AttributeError
    argv = sys.argv[1:]
    data: bytes | None = None
    if argv == ["get"]:
        import os  # noqa: PLC0415
        import time  # noqa: PLC0415

        from agent._hardening import limit_core  # noqa: PLC0415
        from agent.credential_helpers.docker import read_request  # noqa: PLC0415 - stdlib only
        from agent.registries.tokens import warm_get  # noqa: PLC0415 - stdlib only

        limit_core()
        data = read_request(sys.stdin.buffer if sys.stdin is not None else None)
        try:
            answer = warm_get(data, os.environ, time.time())
        except Exception:  # noqa: BLE001 - the warm path never fails: the full command decides
            answer = None
        if answer is not None:
            try:
                sys.stdout.write(answer)
                sys.stdout.flush()
            except BrokenPipeError:
                sys.exit(quiet_broken_pipe())
            sys.exit(0)
    from agent import _hardening  # noqa: PLC0415

    _hardening.harden_process()  # it prints registry refresh tokens
    from agent.cli.docker_credential import main as helper_main  # noqa: PLC0415

    try:
        code = helper_main(argv, stdin=data)
    except BrokenPipeError:
        code = quiet_broken_pipe()
    gc.freeze()
    sys.exit(code)


def main() -> None:
    """Entry point of the ``azauth`` command."""
    from agent._standalone import mark_command  # noqa: PLC0415
    from agent._stdio import (  # noqa: PLC0415 - stdlib only
        guard_standard_streams,
        quiet_broken_pipe,
    )

    mark_command()  # before anything imports agent.exceptions: no azure-core (agent._azure_core)
    # No garbage collection while imports build their hundred thousand objects (none of them
    # garbage): agent.cli.main turns it back on for the long-running modes once it knows the mode.
    gc.disable()
    argv = sys.argv[1:]
    command = argv[0] if argv else None
    closed = guard_standard_streams()
    try:
        if command in _FAST_COMMANDS and not closed:
            from agent._hardening import limit_core  # noqa: PLC0415
            from agent.credential_helpers.warm import serve  # noqa: PLC0415 - only these commands need it

            limit_core()
            fast = serve(argv)
            if fast is not None:
                sys.exit(fast)
        if command in _SECRET_COMMANDS:
            from agent import _hardening  # noqa: PLC0415

            _hardening.harden_process()
            if command in _SCRUBBING_COMMANDS:
                _hardening.scrub_system_token()
        from agent.cli.main import main as cli_main  # noqa: PLC0415 - keep start-up lazy

        code = cli_main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        sys.exit(quiet_broken_pipe())
    # The process is about to exit: spare the interpreter's final collection of every object
    # the imports created (about 25 ms for `azauth run`, measured by bench/bench_run.py).
    gc.freeze()
    sys.exit(code)
