"""``worker.egress.notify.verify`` is what a caller's receiver runs on headers anyone can send:
it answers True or False and never raises, whatever the headers (a raise is a 500 in a receiver
written as the README shows)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.egress.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, verify

SECRET = "a-notify-secret"
BODY = b'{"job_id":"j"}'
NOW = 1_700_000_000


def _good() -> dict[str, str]:
    ts = str(NOW)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: "v1=" + signature(SECRET, ts, BODY)}


@pytest.mark.parametrize(
    "changes",
    [
        {TIMESTAMP_HEADER: "²"},  # str.isdigit() is True, int() refuses it
        {TIMESTAMP_HEADER: "9" * 400},  # int, then a float too large
        {TIMESTAMP_HEADER: "٣" * 5},  # Arabic-Indic digits: int() reads them
        {SIGNATURE_HEADER: "v1=" + "é" * 64},  # compare_digest refuses non-ASCII str
        {SIGNATURE_HEADER: None},
        {TIMESTAMP_HEADER: None},
        {TIMESTAMP_HEADER: 1_700_000_000},
        {SIGNATURE_HEADER: b"v1=00"},
        {TIMESTAMP_HEADER: ""},
        {SIGNATURE_HEADER: "v1="},
        {SIGNATURE_HEADER: "v2=" + "0" * 64},
    ],
)
def test_hostile_headers_are_false_not_an_exception(changes: dict[str, Any]) -> None:
    assert verify(SECRET, {**_good(), **changes}, BODY, now=NOW) is False


def test_a_huge_timestamp_against_the_clock_is_false() -> None:
    ts = "9" * 400  # time.time() - int(ts) overflows a float
    headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: "v1=" + signature(SECRET, ts, BODY)}
    assert verify(SECRET, headers, BODY) is False


def test_a_good_signature_verifies_and_a_stale_one_does_not() -> None:
    assert verify(SECRET, _good(), BODY, now=NOW) is True
    assert verify(SECRET, _good(), BODY, now=NOW + 301) is False
    assert verify(SECRET, _good(), BODY + b" ", now=NOW) is False


text_or_junk = st.one_of(st.text(), st.binary(), st.integers(), st.none(), st.floats())


@given(ts=text_or_junk, sig=text_or_junk, body=st.one_of(st.binary(), st.text()))
def test_any_headers_give_a_bool(ts: Any, sig: Any, body: Any) -> None:
    assert verify(SECRET, {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sig}, body, now=NOW) in (
        True,
        False,
    )


@given(ts=st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=400))
def test_any_digits_give_a_bool(ts: str) -> None:
    headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: "v1=" + signature(SECRET, ts, BODY)}
    assert verify(SECRET, headers, BODY, now=NOW) is False
