"""Azure Pipelines logging commands: golden strings, escaping round-trip, secret handling."""

from __future__ import annotations

import pytest

from agent.outputs.pipeline_variables import (
    escape_data,
    escape_property,
    render_pipeline_variables,
    render_set_secret,
    render_set_variable,
)

TOKEN = "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJhcGkifQ.access-signature"


def decode_command(line: str) -> tuple[str, dict[str, str], str]:
    """Parse a logging command the way the Azure Pipelines agent does (Command.TryParse).

    The first ']' after '##vso[' ends the properties; properties split on ';' and each at its
    first '='; property values and data are unescaped %3B %0D %0A %5D first, then %AZP25 -> %
    (DECODE_PERCENTS, on by default).
    """
    assert line.startswith("##vso[")
    close = line.index("]")
    head, data = line[len("##vso[") : close], line[close + 1 :]
    command, _, properties_text = head.partition(" ")
    properties = {}
    for item in properties_text.split(";"):
        if item:
            key, _, value = item.partition("=")
            properties[key.lower()] = unescape(value)
    return command, properties, unescape(data)


def unescape(text: str) -> str:
    for escaped, raw in (("%3B", ";"), ("%0D", "\r"), ("%0A", "\n"), ("%5D", "]")):
        text = text.replace(escaped, raw)
    return text.replace("%AZP25", "%")


NASTY = [
    "plain",
    "100%",
    "%3B literally",
    "%AZP25 literally",
    "%0A%0D%5D%25",
    "semi;colon",
    "close]bracket ] ]]",
    "line1\nline2\r\nline3\r",
    "##vso[task.complete result=Failed;]",
    "unicode ☃ 日本",
    "",
    "%",
    "%%AZP25",
]


class TestGolden:
    def test_plain_variable(self):
        """A plain variable has only the variable property."""
        assert render_set_variable("MY_VAR", "value", secret=False) == (
            "##vso[task.setvariable variable=MY_VAR]value"
        )

    def test_secret_output_variable(self):
        """Secret and output flags appear as issecret=true;isoutput=true, in that order."""
        assert render_set_variable("AZ.TOKEN", TOKEN, secret=True, is_output=True) == (
            f"##vso[task.setvariable variable=AZ.TOKEN;issecret=true;isoutput=true]{TOKEN}"
        )

    def test_output_only(self):
        """is_output alone adds only isoutput=true."""
        assert render_set_variable("V", "x", secret=False, is_output=True) == (
            "##vso[task.setvariable variable=V;isoutput=true]x"
        )

    def test_set_secret(self):
        """setsecret carries the escaped value as data."""
        assert render_set_secret("a%b\nc") == "##vso[task.setsecret]a%AZP25b%0Ac"

    def test_escaping_rules(self):
        """Data escapes % CR LF; properties also ] and ;, with % first."""
        assert escape_data("%;]\r\n") == "%AZP25;]%0D%0A"
        assert escape_property("%;]\r\n") == "%AZP25%3B%5D%0D%0A"

    def test_secret_flag_has_no_default(self):
        """Callers must say whether a variable is secret: omitting it is a TypeError."""
        with pytest.raises(TypeError):
            render_set_variable("V", "x")  # type: ignore[call-arg]


class TestRoundTrip:
    @pytest.mark.parametrize("value", NASTY)
    def test_data_round_trip(self, value):
        """Every value survives the agent's decoding unchanged, on one physical line."""
        line = render_set_variable("V", value, secret=False)

        command, properties, data = decode_command(line)

        assert "\n" not in line
        assert "\r" not in line
        assert command == "task.setvariable"
        assert properties == {"variable": "V"}
        assert data == value

    @pytest.mark.parametrize("value", NASTY)
    def test_setsecret_round_trip(self, value):
        """setsecret data survives decoding unchanged."""
        assert decode_command(render_set_secret(value))[2] == value

    @pytest.mark.parametrize("value", NASTY)
    def test_property_round_trip(self, value):
        """Property escaping round-trips, and no property value can end the property list."""
        line = f"##vso[task.setvariable variable={escape_property(value)};issecret=true]data"

        _, properties, data = decode_command(line)

        assert properties == {"variable": value, "issecret": "true"}
        assert data == "data"


class TestNames:
    @pytest.mark.parametrize("name", ["A B", "A;B", "A]B", "", "A=B", "a-b"])
    def test_invalid_names(self, name):
        """Names other than letters, digits, '.' and '_' are refused."""
        with pytest.raises(ValueError, match="invalid pipeline variable name"):
            render_set_variable(name, "x", secret=False)

    @pytest.mark.parametrize(
        "name", ["SECRET_TOKEN", "secretThing", "Endpoint.X", "input_a", "PATH", "securefile1"]
    )
    def test_reserved_prefixes(self, name):
        """Names Azure Pipelines reserves (and would not pass to tasks) are refused."""
        with pytest.raises(ValueError, match="reserved prefix"):
            render_set_variable(name, "x", secret=False)


class TestRenderPipelineVariables:
    def test_setsecret_comes_first(self):
        """Secrets are registered before any line carries them; variables keep their order."""
        text = render_pipeline_variables(
            {"AZ_TENANT": "tenant-guid", "AZ_TOKEN": TOKEN, "AZ_EXPIRES": "1767225600"},
            secret_names={"AZ_TOKEN"},
            is_output=False,
        )

        assert text == (
            f"##vso[task.setsecret]{TOKEN}\n"
            "##vso[task.setvariable variable=AZ_TENANT]tenant-guid\n"
            f"##vso[task.setvariable variable=AZ_TOKEN;issecret=true]{TOKEN}\n"
            "##vso[task.setvariable variable=AZ_EXPIRES]1767225600\n"
        )

    def test_no_line_shows_a_secret_before_it_is_registered(self):
        """Scanning line by line, a secret value is never seen before its setsecret."""
        values = {"HEADER": f"Bearer {TOKEN}", "PLAIN": "x", "AZ_TOKEN": TOKEN}
        lines = render_pipeline_variables(
            values, secret_names={"AZ_TOKEN"}, is_output=True
        ).splitlines()

        registered: set[str] = set()
        for line in lines:
            command, properties, data = decode_command(line)
            if command == "task.setsecret":
                registered.add(data)
                continue
            if TOKEN in data:
                assert TOKEN in registered
                assert properties.get("issecret") == "true"

    def test_derived_values_are_secret_too(self):
        """A value containing a secret (e.g. 'Bearer <token>') is masked and marked secret."""
        text = render_pipeline_variables(
            {"AZ_TOKEN": TOKEN, "AUTH_HEADER": f"Bearer {TOKEN}"},
            secret_names={"AZ_TOKEN"},
            is_output=False,
        )

        commands = [decode_command(line) for line in text.splitlines()]
        secrets_registered = [data for command, _, data in commands if command == "task.setsecret"]
        flags = {
            p["variable"]: p.get("issecret") for c, p, _ in commands if c == "task.setvariable"
        }
        assert secrets_registered == [TOKEN, f"Bearer {TOKEN}"]
        assert flags == {"AZ_TOKEN": "true", "AUTH_HEADER": "true"}

    def test_non_secrets_are_not_flagged(self):
        """Without secret names nothing is registered or flagged (default is not secret)."""
        text = render_pipeline_variables({"A": "1", "B": "2"}, secret_names=set(), is_output=False)

        assert "setsecret" not in text
        assert "issecret" not in text

    def test_multiline_secret_registers_each_long_line(self):
        """A multi-line secret is registered whole and per line, skipping very short lines."""
        secret = "-----BEGIN KEY-----\nabcdefghijklmnop\n}\n-----END KEY-----"
        text = render_pipeline_variables({"KEY": secret}, secret_names={"KEY"}, is_output=False)

        registered = [decode_command(line)[2] for line in text.splitlines()[:-1]]
        assert registered == [
            secret,
            "-----BEGIN KEY-----",
            "abcdefghijklmnop",
            "-----END KEY-----",
        ]

    def test_empty_secret_is_not_registered(self):
        """An empty secret value registers nothing (it would mask nothing)."""
        text = render_pipeline_variables({"KEY": ""}, secret_names={"KEY"}, is_output=False)

        assert text == "##vso[task.setvariable variable=KEY;issecret=true]\n"

    def test_empty_mapping(self):
        """No values, no output."""
        assert render_pipeline_variables({}, secret_names=set(), is_output=False) == ""

    def test_invalid_name_is_refused_before_anything_is_rendered(self):
        """A bad name fails the whole render (no partial command list)."""
        with pytest.raises(ValueError, match="A B"):
            render_pipeline_variables({"OK": "1", "A B": "2"}, secret_names=set(), is_output=False)
