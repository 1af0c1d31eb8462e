"""Logging: redaction first, JSON/console renderers, levels, stderr only."""

from __future__ import annotations

import io
import json
import logging
import os
import select
import subprocess
import sys

import pytest
import structlog
from structlog.testing import capture_logs

from agent import _secrets
from agent.logs import (
    MASK,
    configure_logging,
    forget_secrets,
    get_logger,
    redact_secrets,
    redact_text,
    register_secret,
)

JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9BenVyZUFEVG9rZW5FeGNoYW5nZSJ9.c2lnbmF0dXJl"
SYSTEM_TOKEN = "q6z3hx2kbc7lmnvd5pwy4s0rjgtf1ae9" * 2  # an opaque job token, not JWT-shaped


@pytest.fixture(autouse=True)
def _reset_logging():
    forget_secrets()
    yield
    forget_secrets()
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ == "_StdlibBridge":
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TestRedactionProcessor:
    def test_secret_keys_are_masked_at_any_depth(self):
        """Values of credential-named keys are masked, case-insensitively, in nested dicts and lists."""
        with capture_logs(processors=[redact_secrets]) as logs:
            get_logger("t").info(
                "request",
                token="t1",
                access_token="t2",
                oidcToken="t3",
                client_assertion="t4",
                assertion="t5",
                SYSTEM_ACCESSTOKEN="t6",
                password="t7",
                client_secret="t8",
                credential="t9",
                tokens=["t12", "t13"],
                headers={"Authorization": "Bearer t10", "Accept": "application/json"},
                attempts=[{"id_token": "t11", "status": 400}],
                token_type="Bearer",
                token_endpoint="https://login/token",
            )

        event = logs[0]
        for key in (
            "token",
            "access_token",
            "oidcToken",
            "client_assertion",
            "assertion",
            "SYSTEM_ACCESSTOKEN",
            "password",
            "client_secret",
            "credential",
            "tokens",
        ):
            assert event[key] == MASK, key
        assert event["headers"] == {"Authorization": MASK, "Accept": "application/json"}
        assert event["attempts"] == [{"id_token": MASK, "status": 400}]
        assert event["token_type"] == "Bearer"
        assert event["token_endpoint"] == "https://login/token"

    def test_caller_objects_are_not_modified(self):
        """Redaction copies: a headers dict the caller still uses keeps its real value."""
        headers = {"Authorization": "Bearer real"}

        with capture_logs(processors=[redact_secrets]):
            get_logger().info("sending", headers=headers)

        assert headers == {"Authorization": "Bearer real"}

    def test_jwt_in_free_text_is_masked(self):
        """A JWT-looking string is masked inside any string, including the event message."""
        with capture_logs(processors=[redact_secrets]) as logs:
            get_logger().warning(
                f"server said: invalid assertion {JWT} (AADSTS700024)", detail=f"[{JWT}]"
            )

        assert logs[0]["event"] == f"server said: invalid assertion {MASK} (AADSTS700024)"
        assert logs[0]["detail"] == f"[{MASK}]"

    def test_registered_secret_masked_inside_longer_strings(self):
        """A registered secret is masked wherever it appears, never leaving a prefix behind."""
        register_secret(SYSTEM_TOKEN)

        with capture_logs(processors=[redact_secrets]) as logs:
            get_logger().info(
                "env dump", env=f"SYSTEM_ACCESSTOKEN={SYSTEM_TOKEN};X=1", raw=SYSTEM_TOKEN.encode()
            )

        assert logs[0]["env"] == f"SYSTEM_ACCESSTOKEN={MASK};X=1"
        assert logs[0]["raw"] == MASK
        assert SYSTEM_TOKEN[:8] not in json.dumps(logs[0])

    def test_overlapping_secrets_are_masked_whole(self):
        """When one registered secret contains another, the longer one is masked as a whole."""
        register_secret("azauth-logs-overlap")
        register_secret("azauth-logs-overlap-and-more")

        assert (
            redact_text("x azauth-logs-overlap-and-more y azauth-logs-overlap")
            == f"x {MASK} y {MASK}"
        )

    def test_secret_containing_another_is_masked_whole(self):
        """A secret that contains another registered secret in its middle is masked whole."""
        register_secret("azauth-logs-inner-secret")
        register_secret("azauth-logs-outer-azauth-logs-inner-secret-tail")

        assert (
            redact_text(
                "[azauth-logs-outer-azauth-logs-inner-secret-tail] azauth-logs-inner-secret"
            )
            == f"[{MASK}] {MASK}"
        )

    def test_many_registered_secrets(self):
        """Hundreds of registered secrets (a long run) are all masked."""
        values = [f"azauth-logs-many-{number:04d}-{'x' * 40}" for number in range(500)]
        for value in values:
            register_secret(value)

        assert redact_text(" ".join(values[::50])) == " ".join([MASK] * 10)

    def test_secrets_registered_with_the_credential_registry_are_masked(self):
        """Values the credential registers in agent._secrets are masked in log events too."""
        _secrets.register_secret("azauth-logs-credential-registry-value")

        with capture_logs(processors=[redact_secrets]) as logs:
            get_logger().info("x azauth-logs-credential-registry-value y")

        assert logs[0]["event"] == f"x {MASK} y"

    def test_registered_here_is_known_to_the_credential_registry(self):
        """register_secret also feeds agent._secrets, which error formatting uses."""
        register_secret("azauth-logs-shared-value")

        assert _secrets.redact_text("[azauth-logs-shared-value]") == f"[{MASK}]"

    def test_short_values_are_not_registered(self):
        """Values too short to be credentials are ignored, so ordinary words stay readable."""
        register_secret("abc")

        assert redact_text("abc abc") == "abc abc"

    def test_other_objects_are_rendered_then_redacted(self):
        """Objects whose repr carries a secret are rendered to text and redacted."""
        register_secret(SYSTEM_TOKEN)

        class Leaky:
            def __repr__(self):
                return f"Leaky({SYSTEM_TOKEN})"

        with capture_logs(processors=[redact_secrets]) as logs:
            get_logger().info("object", thing=Leaky(), error=ValueError(f"bad {JWT}"))

        assert logs[0]["thing"] == f"Leaky({MASK})"
        assert logs[0]["error"] == f"ValueError: bad {MASK}"

    def test_exceptions_are_formatted_then_redacted(self):
        """exc_info is turned into a traceback text with secrets masked, chained causes included."""
        register_secret(SYSTEM_TOKEN)

        with capture_logs(processors=[redact_secrets]) as logs:
            try:
                try:
                    raise KeyError(SYSTEM_TOKEN)
                except KeyError as inner:
                    raise RuntimeError(f"exchange failed for {JWT}") from inner
            except RuntimeError:
                get_logger().exception("token_request_failed")

        event = logs[0]
        assert "exc_info" not in event
        assert "RuntimeError: exchange failed for ***" in event["exception"]
        assert "KeyError" in event["exception"]
        assert SYSTEM_TOKEN not in event["exception"]
        assert JWT not in event["exception"]


class TestJsonOutput:
    def test_one_json_object_per_line_with_secrets_masked(self):
        """JSON mode writes one JSON object per line, with level, timestamp and masked values."""
        stream = io.StringIO()
        configure_logging(fmt="json", stream=stream)
        register_secret(SYSTEM_TOKEN)

        log = get_logger("agent.runner")
        log.info("token_acquired", scope="https://management.azure.com/.default", access_token=JWT)
        log.warning("retrying with %s", SYSTEM_TOKEN)

        lines = json_lines(stream)
        assert len(lines) == 2
        assert lines[0]["event"] == "token_acquired"
        assert lines[0]["level"] == "info"
        assert lines[0]["logger"] == "agent.runner"
        assert lines[0]["access_token"] == MASK
        assert lines[0]["timestamp"].endswith("Z")
        assert lines[1]["event"] == f"retrying with {MASK}"
        assert JWT not in stream.getvalue()
        assert SYSTEM_TOKEN not in stream.getvalue()

    def test_exception_in_json(self):
        """An exception logged in JSON mode is one line, its text redacted."""
        stream = io.StringIO()
        configure_logging(fmt="json", stream=stream)

        try:
            raise ValueError(f"assertion {JWT} rejected")
        except ValueError:
            get_logger().exception("failed")

        (line,) = json_lines(stream)
        assert "ValueError: assertion *** rejected" in line["exception"]
        assert JWT not in stream.getvalue()

    def test_context_variables_are_merged_and_redacted(self):
        """Bound context variables appear in events, redacted like everything else."""
        stream = io.StringIO()
        configure_logging(fmt="json", stream=stream)

        with structlog.contextvars.bound_contextvars(connection="prod", oidc_token=JWT):
            get_logger().info("refreshing")

        (line,) = json_lines(stream)
        assert line["connection"] == "prod"
        assert line["oidc_token"] == MASK

    def test_redaction_is_the_first_processor(self):
        """redact_secrets runs before any other processor."""
        configure_logging(fmt="json", stream=io.StringIO())

        assert structlog.get_config()["processors"][0] is redact_secrets

    def test_auto_is_json_when_not_a_terminal(self):
        """auto picks JSON lines for a stream that is not a TTY."""
        stream = io.StringIO()
        configure_logging(stream=stream)

        get_logger().info("hello", n=1)

        assert json_lines(stream)[0]["n"] == 1


class TestLevels:
    def test_level_filtering(self):
        """Events below the configured level are dropped."""
        stream = io.StringIO()
        configure_logging(fmt="json", level="warning", stream=stream)

        log = get_logger()
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")

        assert [line["event"] for line in json_lines(stream)] == ["w", "e"]

    def test_debug_level(self):
        """debug shows debug events."""
        stream = io.StringIO()
        configure_logging(fmt="json", level="DEBUG", stream=stream)

        get_logger().debug("d")

        assert [line["event"] for line in json_lines(stream)] == ["d"]

    def test_unknown_level_and_format(self):
        """Unknown levels and formats are ValueErrors."""
        with pytest.raises(ValueError, match="log level"):
            configure_logging(level="verbose", stream=io.StringIO())
        with pytest.raises(ValueError, match="log format"):
            configure_logging(fmt="xml", stream=io.StringIO())  # type: ignore[arg-type]

    def test_a_later_configuration_of_someone_else_sets_its_own_level(self):
        """The early skip of events below azauth's level holds only while its chain is installed."""
        configure_logging(fmt="json", level="error", stream=io.StringIO())
        log = get_logger("agent.x")
        captured: list[str] = []

        def keep(_logger: object, _method: str, event_dict: dict[str, object]) -> str:
            captured.append(str(event_dict["event"]))
            return ""

        # An application's own configuration, at debug level, replaces azauth's.
        structlog.configure(
            processors=[keep],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
            logger_factory=structlog.ReturnLoggerFactory(),
        )
        log.debug("token_served", connection="prod")

        assert captured == ["token_served"]

    def test_reconfiguration_reaches_existing_loggers(self):
        """A logger created before a reconfiguration writes to the new stream."""
        first, second = io.StringIO(), io.StringIO()
        configure_logging(fmt="json", stream=first)
        log = get_logger("early")
        log.info("one")

        configure_logging(fmt="json", stream=second)
        log.info("two")

        assert [line["event"] for line in json_lines(first)] == ["one"]
        assert [line["event"] for line in json_lines(second)] == ["two"]


class TestStdlibBridge:
    def test_library_warnings_are_redacted_and_rendered(self):
        """Records of the standard logging module go through the same redaction and renderer."""
        stream = io.StringIO()
        configure_logging(fmt="json", stream=stream)

        logging.getLogger("azure.core.pipeline").warning("retrying %s with %s", "POST", JWT)
        logging.getLogger("azure.core.pipeline").info("noisy request log")

        (line,) = json_lines(stream)
        assert line["event"] == f"retrying POST with {MASK}"
        assert line["logger"] == "azure.core.pipeline"
        assert line["level"] == "warning"

    def test_library_debug_shown_at_debug(self):
        """At debug level, libraries' debug records are shown too."""
        stream = io.StringIO()
        configure_logging(fmt="json", level="debug", stream=stream)

        logging.getLogger("aiohttp.client").debug("connect")

        assert [line["event"] for line in json_lines(stream)] == ["connect"]

    def test_configuring_twice_installs_one_bridge(self):
        """Reconfiguring replaces the bridge instead of duplicating every record."""
        stream = io.StringIO()
        configure_logging(fmt="json", stream=io.StringIO())
        configure_logging(fmt="json", stream=stream)

        logging.getLogger("lib").warning("once")

        assert len(json_lines(stream)) == 1


class TestConsoleOutput:
    def test_console_on_a_terminal(self):
        """auto renders human-readable lines (not JSON) on a real terminal, secrets masked."""
        main_fd, terminal_fd = os.openpty()
        terminal = os.fdopen(terminal_fd, "w", encoding="utf-8", buffering=1)
        try:
            configure_logging(stream=terminal)
            get_logger("agent.cli").warning(
                "token_refresh_failed", connection="prod", oidc_token=JWT
            )
            terminal.flush()
            output = b""
            while select.select([main_fd], [], [], 2.0)[0]:
                chunk = os.read(main_fd, 65536)
                output += chunk
                if b"\n" in chunk:
                    break
        finally:
            terminal.close()
            os.close(main_fd)

        text = output.decode("utf-8", "replace")
        assert "token_refresh_failed" in text
        assert "prod" in text
        assert JWT not in text
        assert MASK in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text.strip())

    def test_console_format_forced_without_colors_off_terminal(self):
        """console can be forced on a non-terminal stream; then no ANSI colour codes are written."""
        stream = io.StringIO()
        configure_logging(fmt="console", stream=stream)

        get_logger().info("hello", client_id="abc")

        assert "hello" in stream.getvalue()
        assert "client_id=abc" in stream.getvalue()
        assert "\x1b[" not in stream.getvalue()


class TestStreams:
    def test_nothing_goes_to_stdout(self):
        """In a real process, logs (structlog and stdlib) go to stderr and stdout stays empty."""
        code = (
            "import logging\n"
            "from agent.logs import configure_logging, get_logger\n"
            "configure_logging(level='debug')\n"
            "log = get_logger('x')\n"
            "log.debug('d'); log.info('i'); log.warning('w'); log.error('e')\n"
            "logging.getLogger('lib').warning('stdlib')\n"
            "try:\n    1/0\nexcept ZeroDivisionError:\n    log.exception('boom')\n"
        )

        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )

        assert result.stdout == ""
        events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
        assert events == ["d", "i", "w", "e", "stdlib", "boom"]


class TestOneFront:
    """Library modules configure nothing; without the CLI their events reach stdlib logging."""

    def test_importing_library_modules_leaves_logging_unconfigured(self):
        """Importing the runner, token server, supervisor and credential configures no logging."""
        code = (
            "import logging, structlog\n"
            "import agent.runner, agent.tokenserver.server, agent.supervisor, agent.credential, agent.refresh\n"
            "from agent import AzurePipelinesCredential\n"
            "assert not structlog.is_configured(), 'structlog configured on import'\n"
            "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
            "print('ok')\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "ok\n"

    def test_logging_an_event_configures_nothing_either(self):
        """An event logged before any configuration goes to stdlib; structlog stays untouched."""
        code = (
            "import structlog\n"
            "from agent.logs import get_logger\n"
            "get_logger('agent.runner').info('token_acquired', scope='s')\n"
            "get_logger('agent.runner').warning('output_failed', path='p')\n"
            "assert not structlog.is_configured()\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert result.stdout == ""
        # Python's last-resort handler: warnings and up, on stderr, nothing configured.
        assert result.stderr.splitlines() == ["output_failed path=p"]

    async def test_library_users_see_credential_events_through_stdlib_logging(
        self, connected_emulator, caplog
    ):
        """As with azure-identity: logging.getLogger("agent.credential") has snake_case events."""
        from agent import AzurePipelinesCredential  # noqa: PLC0415

        caplog.set_level(logging.DEBUG, logger="agent")
        emu = connected_emulator
        async with AzurePipelinesCredential(
            tenant_id="72f988bf-86f1-41af-91ab-2d7cd011db47",
            client_id="11111111-2222-3333-4444-555555555555",
            service_connection_id="00000000-aaaa-bbbb-cccc-000000000001",
            system_access_token=emu.system_access_token,
        ) as credential:
            token = await credential.get_token("https://management.azure.com/.default")

        records = [r for r in caplog.records if r.name == "agent.credential"]
        events = [r.azauth_event for r in records]  # type: ignore[attr-defined]
        assert events == ["oidc_token_acquired", "token_acquired"]
        acquired = records[-1]
        assert acquired.levelno == logging.INFO
        assert acquired.getMessage().startswith("token_acquired scope=")
        assert acquired.azauth_fields["expires_on"] == token.expires_on  # type: ignore[attr-defined]
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert token.token not in text
        assert emu.system_access_token not in text

    def test_stdlib_path_redacts_secrets_and_exceptions(self, caplog):
        """Without structlog configured, keys, JWTs, registered secrets and tracebacks are masked."""
        caplog.set_level(logging.DEBUG, logger="agent.test")
        register_secret(SYSTEM_TOKEN)
        log = get_logger("agent.test")
        try:
            raise RuntimeError(f"failed with {SYSTEM_TOKEN}")
        except RuntimeError:
            log.exception("request_crashed", access_token=JWT, note=f"bearer {JWT}")

        (record,) = caplog.records
        text = record.getMessage()
        assert text.startswith("request_crashed access_token=***")
        assert "RuntimeError: failed with ***" in text
        assert JWT not in text
        assert SYSTEM_TOKEN not in text
        assert record.exc_info is None  # formatted and redacted here, never by a handler

    def test_a_foreign_structlog_configuration_gets_redacted_events(self):
        """An application's own structlog chain receives events already redacted."""
        register_secret(SYSTEM_TOKEN)
        with capture_logs() as logs:
            get_logger("agent.runner").warning("upstream_failed", detail=f"x {SYSTEM_TOKEN}")
        assert logs == [{"event": "upstream_failed", "detail": "x ***", "log_level": "warning"}]


class TestLazyInTheCommand:
    """The command installs structlog at its first event at or above the level, not before."""

    @staticmethod
    def _lines(
        mode: str, fmt: str, level: str, first: str, env: dict[str, str]
    ) -> tuple[str, dict]:
        from tests.support import python_program  # noqa: PLC0415

        result = subprocess.run(
            python_program("log_lines.py", mode, fmt, level, first),
            capture_output=True, text=True, check=True, env=env, timeout=60,
        )  # fmt: skip
        stamps = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z"
        import re  # noqa: PLC0415

        return re.sub(stamps, "<time>", result.stderr), json.loads(result.stdout)

    @pytest.mark.parametrize("first", ["azauth", "stdlib"])
    @pytest.mark.parametrize(
        ("fmt", "pipeline"),
        [("console", False), ("json", False), ("json", True), ("azure-pipelines", True)],
    )
    def test_the_lines_are_those_of_an_eager_configuration(self, fmt, pipeline, first):
        env = {k: v for k, v in os.environ.items() if k not in ("TF_BUILD", "NO_COLOR")}
        env["PYTHONPATH"] = os.pathsep.join(sys.path)
        if pipeline:
            env["TF_BUILD"] = "True"

        lazy, lazy_seen = self._lines("lazy", fmt, "warning", first, env)
        eager, eager_seen = self._lines("eager", fmt, "warning", first, env)

        assert lazy == eager
        assert "output_failed" in lazy and "connection_failed" in lazy
        assert "below_the_level" not in lazy and "below the bridge" not in lazy
        assert ("library says" in lazy) == (first == "stdlib")
        assert "eyJhbGciOiJub25lIn0" not in lazy  # still redacted
        assert lazy_seen == {"after_configure": False, "after_suppressed": False}
        assert eager_seen == {"after_configure": True, "after_suppressed": True}

    def test_threads_logging_first_at_once_all_get_the_configuration(self):
        """Whichever thread installs it, no event reaches a half-configured structlog."""
        code = (
            "import logging, sys, threading\n"
            "from agent import logs\n"
            "from agent._standalone import mark_command\n"
            "mark_command()\n"
            "logs.configure_logging(fmt='json', level='warning')\n"
            "barrier = threading.Barrier(8)\n"
            "def work(i):\n"
            "    barrier.wait()\n"
            "    if i % 2:\n"
            "        logs.get_logger('agent.t').warning('first', thread=i)\n"
            "    else:\n"
            "        logging.getLogger('lib').warning('first %s', i)\n"
            "threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]\n"
            "[t.start() for t in threads]\n"
            "[t.join() for t in threads]\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "TF_BUILD"}
        env["PYTHONPATH"] = os.pathsep.join(sys.path)
        for _ in range(5):
            result = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                timeout=60,
            )  # fmt: skip
            assert result.stdout == ""  # structlog's unconfigured default would print there
            events = [json.loads(line) for line in result.stderr.splitlines()]
            assert len(events) == 8
            assert all(e["level"] == "warning" and "timestamp" in e for e in events)
