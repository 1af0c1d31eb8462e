"""The refresh policy and the wire parsing of lifetimes: pure functions, exact numbers."""

from __future__ import annotations

import json
import random

import pytest

from agent.credential import oidc_token_from_response
from agent.exceptions import EntraError, NoUsableLifeError, OidcRequestError, TransportError
from agent.exchange import HttpResponse, parse_token_response
from agent.refresh import RefreshPolicy, describe_offset, is_permanent, oidc_lifetime
from agent.testing.faults import _jwt

POLICY = RefreshPolicy(refresh_margin=300)


class TestRenewal:
    def test_long_tokens_renew_refresh_margin_before_expiry(self):
        assert POLICY.renew_delay(3599) == 3299

    def test_short_tokens_renew_at_half_life(self):
        assert POLICY.renew_delay(300) == 150
        assert POLICY.renew_delay(20) == 10

    def test_refresh_in_wins_when_sooner(self):
        assert POLICY.renew_delay(86399, refresh_in=43199) == 43199

    def test_never_sooner_than_the_floor(self):
        assert POLICY.renew_delay(1) == POLICY.min_interval


class TestRetry:
    rng = random.Random(0)

    def test_transient_backoff_doubles_to_a_cap(self):
        delays = [
            POLICY.retry_delay(n, remaining=10_000, permanent=False, rng=self.rng)
            for n in range(1, 12)
        ]
        assert 0.5 <= delays[0] <= 2.0
        assert all(d <= 60 for d in delays)
        assert delays[-1] >= 30

    def test_never_sleeps_past_half_the_remaining_life(self):
        for n in range(1, 20):
            assert POLICY.retry_delay(n, remaining=40, permanent=False, rng=self.rng) <= 20

    def test_expired_or_missing_token_retries_every_two_to_three_seconds(self):
        for remaining in (None, 0, -500):
            for n in (1, 5, 50):
                delay = POLICY.retry_delay(n, remaining=remaining, permanent=False, rng=self.rng)
                assert 2.0 <= delay <= 3.0

    def test_permanent_failures_back_off_long(self):
        first = POLICY.retry_delay(1, remaining=None, permanent=True, rng=self.rng)
        late = POLICY.retry_delay(10, remaining=None, permanent=True, rng=self.rng)
        assert 22.5 <= first <= 30
        assert 225 <= late <= 300


class TestClassification:
    def entra(self, error: str, codes: list[int], status: int = 400) -> EntraError:
        body = {"error": error, "error_description": "x", "error_codes": codes}
        with pytest.raises(EntraError) as caught:
            parse_token_response(
                HttpResponse(status, "", {}, json.dumps(body).encode()), request_time=0
            )
        return caught.value

    def test_configuration_refusals_are_permanent(self):
        assert is_permanent(self.entra("invalid_scope", [70011]))
        assert is_permanent(self.entra("unauthorized_client", [700016]))
        assert is_permanent(self.entra("invalid_request", [700213]))

    def test_outages_and_expired_assertions_are_transient(self):
        assert not is_permanent(self.entra("temporarily_unavailable", [50196], status=503))
        assert not is_permanent(self.entra("invalid_client", [700024]))
        assert not is_permanent(TransportError("down"))
        assert not is_permanent(NoUsableLifeError("no life"))

    def test_unauthorized_oidc_is_permanent(self):
        assert is_permanent(OidcRequestError("401", status_code=401))
        assert not is_permanent(OidcRequestError("503", status_code=503, retryable=True))


def token_answer(**fields) -> HttpResponse:
    body = {"token_type": "Bearer", "access_token": "a.b.c", **fields}
    return HttpResponse(200, "OK", {}, json.dumps(body).encode())


class TestMalformedNumbers:
    @pytest.mark.parametrize(
        "raw",
        [
            '"inf"',
            "Infinity",
            "-Infinity",
            "NaN",
            '"soon"',
            "true",
            "1e300",
            "[1]",
            '"9" ',
            "1e400",
        ],
    )
    def test_expires_in_that_is_not_a_number_of_seconds_is_a_clear_error(self, raw):
        body = f'{{"token_type":"Bearer","access_token":"a.b.c","expires_in":{raw}}}'.encode()
        if raw == '"9" ':
            assert (
                parse_token_response(HttpResponse(200, "", {}, body), request_time=0).lifetime == 9
            )
            return
        with pytest.raises(EntraError, match="expires_in") as caught:
            parse_token_response(HttpResponse(200, "", {}, body), request_time=0)
        assert caught.value.retryable

    @pytest.mark.parametrize("value", [0, -5])
    def test_no_usable_life_is_an_error(self, value):
        with pytest.raises(NoUsableLifeError, match="no usable life"):
            parse_token_response(token_answer(expires_in=value), request_time=1000)

    def test_refresh_in_infinity_is_an_error(self):
        body = b'{"token_type":"Bearer","access_token":"a.b.c","expires_in":3599,"refresh_in":Infinity}'
        with pytest.raises(EntraError, match="refresh_in"):
            parse_token_response(HttpResponse(200, "", {}, body), request_time=0)

    def test_json_nested_fifty_thousand_deep_is_not_a_crash(self):
        body = b"[" * 50_000 + b"]" * 50_000
        with pytest.raises(EntraError, match="not JSON"):
            parse_token_response(HttpResponse(200, "", {}, body), request_time=0)

    def test_absurd_lifetimes_are_malformed(self):
        with pytest.raises(EntraError, match="not believable"):
            parse_token_response(token_answer(expires_in=10**12), request_time=0)

    def test_lifetime_is_kept_and_expires_on_is_the_servers(self):
        info = parse_token_response(
            token_answer(expires_in=3599, expires_on=2_000_000_000), request_time=1_000
        )
        assert info.lifetime == 3599
        assert info.expires_on == 2_000_000_000


class TestOidcLifetime:
    def test_exp_minus_iat_whatever_the_local_clock(self):
        assert oidc_lifetime(1300, 1000, server_now=None, local_now=99_999) == 300

    def test_date_header_shortens_an_old_token(self):
        assert oidc_lifetime(1300, 1000, server_now=1200, local_now=0) == 100

    def test_without_iat_the_date_header_then_the_local_clock(self):
        assert oidc_lifetime(1300, None, server_now=1100, local_now=0) == 200
        assert oidc_lifetime(1300, None, server_now=None, local_now=1250) == 50

    def test_an_answer_with_a_past_exp_is_no_usable_life(self):
        token = _jwt({"iat": 1000, "exp": 990})
        answer = HttpResponse(200, "OK", {}, json.dumps({"oidcToken": token}).encode())
        with pytest.raises(NoUsableLifeError):
            oidc_token_from_response(answer, "sc", local_now=1000, received=0)

    @pytest.mark.parametrize("exp", [float("inf"), "never", None, 1e300])
    def test_an_unreadable_exp_has_no_lifetime(self, exp):
        token = _jwt({"iat": 1000, "exp": exp})
        answer = HttpResponse(200, "OK", {}, json.dumps({"oidcToken": token}).encode())
        assert oidc_token_from_response(answer, "sc", local_now=1000, received=0).lifetime is None

    def test_clock_offset_is_described_with_both_clocks(self):
        message = describe_offset(1_800_000_600, 1_800_000_000, "Azure DevOps")
        assert message is not None
        assert "10m00s ahead of Azure DevOps" in message
        assert "2027-01-15T08:" in message
        assert describe_offset(1000, 1030, "Azure DevOps") is None


def test_retry_after_is_carried_and_honoured_up_to_a_minute():
    body = json.dumps({"error": "temporarily_unavailable", "error_codes": [50196]}).encode()
    with pytest.raises(EntraError) as caught:
        parse_token_response(HttpResponse(429, "", {"retry-after": "17"}, body), request_time=0)
    assert caught.value.retry_after == 17
    rng = random.Random(1)
    assert POLICY.retry_delay(1, remaining=None, permanent=False, rng=rng, retry_after=17) == 17
    assert POLICY.retry_delay(1, remaining=None, permanent=False, rng=rng, retry_after=900) == 60


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def __getattr__(self, level: str):
        return lambda event, **fields: self.events.append((level, event, fields))


async def test_an_unexpected_exception_is_logged_with_its_connection_and_the_item_lives_on():
    from agent.refresh import Acquired, Item, RefreshEngine
    from agent.testing.fakes import FakeClock

    clock = FakeClock()
    log = _Recorder()
    engine = RefreshEngine(clock, POLICY, rng=random.Random(0), log=log)
    answers = iter([RuntimeError("bug"), None])
    delivered = []

    async def fetch() -> Acquired:
        answer = next(answers)
        if answer is not None:
            raise answer
        return Acquired("token", clock.monotonic(), 60.0)

    async def deliver(acquired: Acquired) -> None:
        delivered.append(acquired.value)

    item = engine.add(Item("prod", "https://management.azure.com/.default", fetch, deliver))
    await engine.attempt(item)  # never raises
    assert item.state.status == "failing"
    assert "internal error (RuntimeError)" in str(item.state.error)
    crash = [e for e in log.events if e[1] == "refresh_crashed"]
    assert crash and crash[0][0] == "error" and crash[0][2]["connection"] == "prod"
    clock.advance(5)
    await engine.attempt(item)
    assert item.state.status == "fresh"
    assert delivered == ["token"]
    assert any(e[2].get("state") == "recovered" for e in log.events)


async def test_a_failed_write_is_retried_without_asking_the_cloud_again():
    from agent.exceptions import OutputError
    from agent.refresh import Acquired, Item, RefreshEngine
    from agent.testing.fakes import FakeClock

    clock = FakeClock()
    engine = RefreshEngine(clock, POLICY, rng=random.Random(0), log=_Recorder())
    fetched = []
    writes = iter([OutputError("disk full", path="out/arm.token"), None])

    async def fetch() -> Acquired:
        fetched.append(clock.monotonic())
        return Acquired(f"token{len(fetched)}", clock.monotonic(), 600.0)

    async def deliver(acquired: Acquired) -> None:
        failure = next(writes)
        if failure is not None:
            raise failure

    item = engine.add(Item("prod", "scope", fetch, deliver))
    await engine.attempt(item)
    assert item.state.status == "failing"
    assert "disk full" in str(item.state.error)
    clock.advance(5)
    await engine.attempt(item)
    assert item.state.status == "fresh"
    assert len(fetched) == 1  # the second attempt only wrote
