"""Retry policy: which answers are retried and how long to wait."""

from __future__ import annotations

import random

import pytest

from agent.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 506, 599])
def test_transient_statuses_are_retried(status):
    assert RetryPolicy().is_retryable_status(status, {})


@pytest.mark.parametrize("status", [200, 302, 400, 401, 403, 404, 501, 505])
def test_other_statuses_are_not(status):
    assert not RetryPolicy().is_retryable_status(status, {})


def test_retry_after_makes_any_error_retryable():
    """As in azure-core: a 401 carrying Retry-After is retried."""
    assert RetryPolicy().is_retryable_status(401, {"Retry-After": "1"})
    assert not RetryPolicy().is_retryable_status(200, {"retry-after": "1"})


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=4.0, rng=random.Random(7))

    delays = [policy.backoff(n) for n in range(1, 7)]

    for n, delay in enumerate(delays, start=1):
        base = min(4.0, 2.0 ** (n - 1))
        assert base * 0.5 <= delay <= base
    assert len(set(delays)) == len(delays)  # jittered, not lockstep


def test_retry_after_seconds_and_dates():
    assert parse_retry_after("3", now=0) == 3.0
    assert parse_retry_after("-2", now=0) == 0.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == 6.0
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_server_delay_replaces_backoff_but_not_beyond_the_cap():
    policy = RetryPolicy(retry_after_max=10)

    assert policy.delay(1, {"Retry-After": "2"}, now=0) == 2.0
    assert policy.delay(1, {"Retry-After": "600"}, now=0) is None
