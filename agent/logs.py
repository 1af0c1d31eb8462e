"""Logging: the one front every azauth module logs through, and the CLI's configuration.

Every module logs with ``_log = get_logger(__name__)`` and stable snake_case events plus
key-value fields: ``_log.info("token_acquired", scope=..., expires_on=...)``. Where an event
goes is decided when it is logged, never on import:

* after :func:`configure_logging` (called by ``agent.cli`` only) or any other structlog
  configuration (an application's, ``structlog.testing.capture_logs``): to structlog;
* otherwise (azauth used as a library): to the standard ``logging`` module, logger ``name``
  (``agent.credential``, ``agent.runner``, ...), as azure-identity does. The message is
  ``event key=value ...`` (redacted, one line); ``record.azauth_event`` and
  ``record.azauth_fields`` carry the event and its redacted fields. Nothing is configured:
  without handlers, Python's last-resort handler shows warnings and errors on stderr.

Importing this module (or any library module) configures nothing and imports no structlog; in
the ``azauth`` command, :func:`configure_logging` leaves structlog's import to the first event
it lets through.

Redaction (:func:`redact_secrets`, always the first processor) replaces with ``***``:

* the value of every key that names a credential, at any depth of nested dicts and lists:
  keys ending in ``token``, ``assertion``, ``authorization``, ``password``, ``secret`` or
  ``credential`` (or their plurals) after lower-casing and turning ``-`` into ``_``
  (``access_token``, ``oidcToken``, ``client_assertion``, ``Authorization``,
  ``SYSTEM_ACCESSTOKEN``, ...), while ``token_type`` or ``token_endpoint`` stay readable;
* every JWT-looking substring (``eyJ...`` ``.`` ``eyJ...`` ``.``) of any string in the event;
* every occurrence of a value passed to :func:`register_secret` (or to
  ``agent._secrets.register_secret``), inside any string;
* the same in a rendered exception: ``exc_info`` is formatted to text here and redacted;
* the ``user:password@`` of every URL; and control characters (newlines included) in values
  other than the rendered exception become spaces, so no value can forge a log line.

Other objects are rendered with ``repr`` before redaction, so nothing reaches a renderer
unredacted. Records of the standard ``logging`` module (aiohttp, azure-core, azure-identity)
are routed through the same chain.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TextIO, get_args

from agent import _secrets, envvars
from agent._pipelines import in_pipeline, neutralize
from agent._standalone import is_command


def _import_structlog() -> None:
    """Import structlog; in the ``azauth`` command without ``rich``.

    structlog imports rich (when installed) for its exception formatter, about 30 ms with what
    rich drags in; azauth formats exceptions itself (:func:`redact_secrets`), so the command
    hides rich from structlog's import. A program using the library is left as it is.
    """
    if not is_command() or "structlog" in sys.modules or "rich" in sys.modules:
        import structlog  # noqa: PLC0415

        return
    sys.modules["rich"] = None  # type: ignore[assignment] # import rich -> ImportError
    try:
        import structlog  # noqa: F401, PLC0415
    finally:
        del sys.modules["rich"]


if TYPE_CHECKING:
    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "AzurePipelinesRenderer",
    "LogFormat",
    "LogLevel",
    "Logger",
    "active_format",
    "add_logger_name",
    "configure_logging",
    "forget_secrets",
    "get_logger",
    "merge_contextvars_redacted",
    "redact_secrets",
    "redact_text",
    "register_secret",
]

MASK = _secrets.MASK
MIN_SECRET_LENGTH = _secrets.MIN_SECRET_LENGTH
# The one registry lives in agent._secrets (error formatting and the credential use it too).
register_secret = _secrets.register_secret
forget_secrets = _secrets.forget_secrets
redact_text = _secrets.redact_text

_SECRET_KEY_SUFFIXES = tuple(
    f"{word}{plural}"
    for word in ("token", "assertion", "authorization", "password", "secret", "credential")
    for plural in ("", "s")
)
# Keys structlog's stdlib bridge and renderers rely on; never rewritten.
_META_KEYS = frozenset({"_record", "_from_structlog"})
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]

LogFormat = Literal["auto", "console", "json", "azure-pipelines"]
"""A log format; ``auto``: ``azure-pipelines`` when ``TF_BUILD`` is set (an Azure Pipelines
job), else ``console`` on a terminal and ``json`` otherwise."""
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
LogLevel = Literal["debug", "info", "warning", "error"]
"""A log level of ``--log-level`` and ``settings.log_level``."""
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
_active_format: str = "auto"
_our_chain: list[Any] | None = None  # the processors configure_logging installed, if current
_our_level = logging.NOTSET  # and the level it filters at

# The log viewer formats a line that starts with one of these prefixes (and group markers); the
# agent runs a "##vso[" command found anywhere in a line.
_PIPELINES_PREFIX = {
    "debug": "##[debug]",
    "warning": "##[warning]",
    "error": "##[error]",
    "critical": "##[error]",
}
_SKIP_KEYS = frozenset({"event", "level", "timestamp", "logger", "_record", "_from_structlog"})


def _pipelines_text(value: object) -> str:
    """One-line text that cannot start or carry a logging command (``##`` becomes ``# #``)."""
    if isinstance(value, list | tuple):
        text = ", ".join(str(item) for item in value)
    else:
        text = value if isinstance(value, str) else repr(value)
    text = neutralize(text.replace("\n", "\\n"))
    if not text or any(c.isspace() for c in text) or "=" in text or '"' in text:
        text = '"' + text.replace('"', '\\"') + '"'
    return text


class AzurePipelinesRenderer:
    """Render an event as one Azure Pipelines log line: ``[##[level]]event key=value ...``.

    Warnings and errors start with ``##[warning]`` / ``##[error]`` (highlighted by the log
    viewer), debug with ``##[debug]``, info is plain. Values are kept on one line and ``##``
    inside them is broken up, so a logged value can never become a logging command.
    """

    def __call__(self, _logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        """Return the line (the last processor of the chain)."""
        level = str(event_dict.get("level", method_name)).lower()
        prefix = _PIPELINES_PREFIX.get(level, "")
        event = neutralize(str(event_dict.get("event", "")).replace("\n", " "))
        parts = [f"{prefix}azauth: {event}"]
        parts += [
            f"{key}={_pipelines_text(value)}"
            for key, value in event_dict.items()
            if key not in _SKIP_KEYS and key != "exception"
        ]
        line = " ".join(parts)
        exception = event_dict.get("exception")
        if exception:
            line += " exception=" + _pipelines_text(exception)
        return line


class _Neutralized:
    """A renderer whose lines cannot carry an Azure Pipelines logging command (``##`` broken up)."""

    def __init__(self, inner: Processor) -> None:
        self._inner = inner

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        """Render with the inner renderer, then :func:`agent._pipelines.neutralize` the text."""
        return neutralize(str(self._inner(logger, method_name, event_dict)))


def active_format() -> str:
    """The log format chosen by the last :func:`configure_logging` (``auto`` resolved)."""
    return _active_format


def resolve_format(fmt: str, stream: TextIO, env: Mapping[str, str] | None = None) -> str:
    """``auto`` made concrete: azure-pipelines under ``TF_BUILD``, console on a tty, else json."""
    if fmt != "auto":
        return fmt
    environ = os.environ if env is None else env
    if environ.get(envvars.TF_BUILD):
        return "azure-pipelines"
    return "console" if _isatty(stream) else "json"


def _is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    normalized = key.lower().replace("-", "_")
    return normalized.endswith(_SECRET_KEY_SUFFIXES)


def _redact_value(value: Any) -> Any:
    """Return a redacted copy of ``value`` (containers are copied, never modified)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    # One line per event: a value (a server's message, a client's query) cannot forge another.
    return _secrets.single_line(redact_text(_as_text(value)))


def _as_text(value: object) -> str:
    """Render a leaf value the way a log line would show it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return repr(value)


def _redact_item(key: object, value: Any) -> Any:
    if _is_secret_key(key) and value is not None and value != "":
        return MASK
    return _redact_value(value)


def _exc_info_tuple(exc_info: Any) -> ExcInfo | None:
    if isinstance(exc_info, BaseException):
        return (type(exc_info), exc_info, exc_info.__traceback__)
    if exc_info is True:
        current = sys.exc_info()
        return None if current[1] is None else current
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and exc_info[1] is not None:
        return exc_info
    return None


def redact_secrets(_logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    """Mask credentials in ``event_dict`` (see the module docstring).

    ``exc_info`` is replaced by ``exception``, the formatted traceback with secrets masked.
    """
    redacted: EventDict = {}
    exc_info = event_dict.get("exc_info")
    for key, value in event_dict.items():
        if key == "exc_info" or key in _META_KEYS:
            continue
        redacted[key] = _redact_item(key, value)
    if exc_info is not None:
        info = _exc_info_tuple(exc_info)
        if info is not None:
            text = "".join(traceback.format_exception(*info)).rstrip("\n")
            redacted["exception"] = redact_text(text)
    for key in _META_KEYS & event_dict.keys():
        redacted[key] = event_dict[key]
    return redacted


def merge_contextvars_redacted(
    _logger: WrappedLogger, _method_name: str, event_dict: EventDict
) -> EventDict:
    """Add the bound context variables, redacted like the event itself.

    Stands in for ``structlog.contextvars.merge_contextvars``, which would add them after
    :func:`redact_secrets` has run.
    """
    import structlog  # noqa: PLC0415 - only a configured chain calls this

    for key, value in structlog.contextvars.get_contextvars().items():
        event_dict.setdefault(key, _redact_item(key, value))
    return event_dict


class _NamedWriteLoggerFactory:
    """Logger factory: ``get_logger(name)`` hands ``name`` to the factory as its first argument."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> Any:
        import structlog  # noqa: PLC0415 - only a configured chain calls this

        logger = structlog.WriteLogger(self._file)
        name = args[0] if args and isinstance(args[0], str) else None
        logger.name = name  # type: ignore[attr-defined]  # read by add_logger_name
        return logger


def add_logger_name(logger: WrappedLogger, _method_name: str, event_dict: EventDict) -> EventDict:
    """Add ``logger``: the name given to :func:`get_logger`, when there was one."""
    name = getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


class _StdlibBridge(logging.Handler):
    """Send records of the standard ``logging`` module through azauth's structlog chain."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string in a library must not crash us
            message = str(record.msg)
        if _pending is not None:
            _install_pending()
        import structlog  # noqa: PLC0415 - installed by configure_logging only

        structlog.get_logger(record.name).log(record.levelno, message, exc_info=record.exc_info)


def _resolve_level(level: str) -> int:
    number = _LEVELS.get(level.lower())
    if number is None:
        raise ValueError(f"unknown log level {level!r} (expected debug, info, warning or error)")
    return number


def configure_logging(
    *,
    fmt: str = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog (and the standard ``logging`` module) for azauth.

    In the ``azauth`` command (:func:`agent._standalone.mark_command`), while structlog is not
    imported yet, everything is decided here but structlog is imported and configured by the
    first event at or above ``level`` (from azauth or the standard ``logging`` module): the
    lines are the same, and a run that logs nothing never imports it.

    Args:
        fmt: ``console`` (human-readable, colours on a terminal), ``json`` (one JSON object per
            line), ``azure-pipelines`` (plain lines; warnings and errors as ``##[warning]`` /
            ``##[error]``) or ``auto``: azure-pipelines when ``TF_BUILD`` is set, else console
            when ``stream`` is a terminal, else JSON.
        level: ``debug``, ``info``, ``warning`` or ``error``. Records of other libraries are
            shown from ``warning`` up (``debug`` shows theirs too).
        stream: where to write; standard error by default. Never standard output, which carries
            data and helper protocols.

    Raises:
        ValueError: unknown ``fmt`` or ``level``.
    """
    target = stream if stream is not None else sys.stderr
    number = _resolve_level(level)
    resolved = resolve_format(fmt, target)
    if resolved not in ("console", "json", "azure-pipelines"):
        raise ValueError(f"unknown log format {fmt!r} (expected {', '.join(LOG_FORMATS)})")
    chosen = _Chosen(
        fmt=resolved,
        level=number,
        stream=target,
        colors=resolved == "console" and _isatty(target) and envvars.NO_COLOR not in os.environ,
        # JSON or console lines in a job log: the agent would run a "##vso[" found in a value.
        neutralized=resolved != "azure-pipelines" and in_pipeline(),
    )
    global _active_format, _our_level, _pending  # noqa: PLW0603 - one process-wide configuration
    _active_format = resolved
    _our_level = number
    if is_command() and "structlog" not in sys.modules:
        # The command: structlog (~8 ms of imports) is configured by the first event at or
        # above the level; a healthy `run --once -q` logs nothing and never imports it. Only
        # agent.logs imports structlog there, so nothing can configure it in between.
        _pending = chosen
    else:
        _pending = None
        _install(chosen)
    _install_stdlib_bridge(number)


class _Chosen:
    """What :func:`configure_logging` decided, installed into structlog by :func:`_install`."""

    __slots__ = ("colors", "fmt", "level", "neutralized", "stream")

    def __init__(
        self, *, fmt: str, level: int, stream: TextIO, colors: bool, neutralized: bool
    ) -> None:
        self.fmt = fmt
        self.level = level
        self.stream = stream
        self.colors = colors
        self.neutralized = neutralized


_pending: _Chosen | None = None
"""The command's configuration, until its first event at or above the level installs it."""


def _install(chosen: _Chosen) -> None:
    """Configure structlog as :func:`configure_logging` chose."""
    _import_structlog()
    import structlog  # noqa: PLC0415 - the CLI's configuration; library imports stay light

    renderer: Processor
    if chosen.fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=chosen.colors)
    elif chosen.fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = AzurePipelinesRenderer()
    if chosen.neutralized:
        renderer = _Neutralized(renderer)
    global _our_chain  # noqa: PLW0603 - one process-wide configuration
    _our_chain = [
        redact_secrets,
        merge_contextvars_redacted,
        add_logger_name,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        renderer,
    ]
    structlog.configure(
        processors=_our_chain,
        wrapper_class=structlog.make_filtering_bound_logger(chosen.level),
        logger_factory=_NamedWriteLoggerFactory(chosen.stream),
        # Not cached: a reconfiguration (another stream or level) must reach every logger.
        cache_logger_on_first_use=False,
    )


def _install_pending() -> None:
    """Install the command's pending configuration, if there is one (before an event).

    A thread logging meanwhile waits for the installation: ``_pending`` is cleared only once
    structlog is configured, so no event reaches a half-configured structlog.
    """
    global _pending, _installer  # noqa: PLW0603 - one process-wide configuration
    if _installer == threading.get_ident():
        return
    with _install_lock:
        chosen = _pending
        if chosen is None:
            return
        _installer = threading.get_ident()
        try:
            _install(chosen)
        finally:
            _installer = None
        _pending = None


_install_lock = threading.Lock()
_installer: int | None = None
"""The thread installing the pending configuration (an event it logs meanwhile goes on)."""


def _install_stdlib_bridge(level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StdlibBridge):
            root.removeHandler(handler)
    # Libraries log every HTTP request at INFO (azure-core); keep them quiet unless debugging.
    bridge_level = level if level == logging.DEBUG else max(level, logging.WARNING)
    bridge = _StdlibBridge(level=bridge_level)
    root.addHandler(bridge)
    root.setLevel(bridge_level)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(name: str | None = None) -> Logger:
    """Return the logger of module ``name`` (usually ``__name__``); see the module docstring.

    Safe at module level: nothing is configured or imported until an event is logged.
    """
    return Logger(name or "agent")


class Logger:
    """azauth's logging front: snake_case events with key-value fields, secrets redacted.

    ``debug``/``info``/``warning``/``error``/``exception(event, **fields)`` and
    ``log(level, event, **fields)``; ``exc_info=`` as in structlog and ``logging``. Positional
    arguments are %-formatted into ``event`` (as structlog does); azauth's own modules never
    pass any.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Logger({self.name!r})"

    def debug(self, event: str, *args: object, **fields: Any) -> None:
        """Log ``event`` at debug level."""
        self._emit(logging.DEBUG, event, args, fields)

    def info(self, event: str, *args: object, **fields: Any) -> None:
        """Log ``event`` at info level."""
        self._emit(logging.INFO, event, args, fields)

    def warning(self, event: str, *args: object, **fields: Any) -> None:
        """Log ``event`` at warning level."""
        self._emit(logging.WARNING, event, args, fields)

    def error(self, event: str, *args: object, **fields: Any) -> None:
        """Log ``event`` at error level."""
        self._emit(logging.ERROR, event, args, fields)

    def exception(self, event: str, *args: object, **fields: Any) -> None:
        """Log ``event`` at error level with the exception being handled."""
        fields.setdefault("exc_info", True)
        self._emit(logging.ERROR, event, args, fields)

    def log(self, level: int, event: str, *args: object, **fields: Any) -> None:
        """Log ``event`` at ``level`` (a ``logging`` level number)."""
        self._emit(level, event, args, fields)

    def _emit(
        self, level: int, event: str, args: tuple[object, ...], fields: dict[str, Any]
    ) -> None:
        if args:  # structlog's and logging's positional arguments, for foreign callers
            event = event % args
        if _pending is not None:
            if level < _our_level:
                return  # below the command's level: structlog stays unimported
            _install_pending()
        structlog = sys.modules.get("structlog")
        if structlog is not None and structlog.is_configured():
            chain = structlog.get_config()["processors"]
            if chain is _our_chain and level < _our_level:
                return  # below the CLI's level: skip building a logger for nothing (hot paths)
            if not chain or chain[0] is not redact_secrets:  # someone else's: redact first
                fields = dict(redact_secrets(None, "", fields))
            structlog.get_logger(self.name).log(level, event, **fields)
            return
        std = logging.getLogger(self.name)
        if not std.isEnabledFor(level):
            return
        redacted = redact_secrets(None, "", {"event": event, **fields})
        text = _secrets.single_line(str(redacted.pop("event")))
        exception = redacted.pop("exception", None)
        parts = [text] + [f"{key}={_stdlib_value(value)}" for key, value in redacted.items()]
        message = " ".join(parts)
        if exception:
            message += "\n" + str(exception)
        std.log(
            level,
            "%s",
            message,
            extra={"azauth_event": text, "azauth_fields": redacted},
            stacklevel=3,
        )


def _stdlib_value(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text) if (not text or " " in text or "=" in text) else text
