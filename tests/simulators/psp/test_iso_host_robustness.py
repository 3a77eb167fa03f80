"""The simulated ISO 8583 host answers whatever decodes: a bad field is a code, never a crash."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sync.connectors.iso8583_messages import build_authorisation, build_echo
from edge_sync.connectors.iso8583_spec import SPEC, decode, encode
from simulators.psp.acquirer import Acquirer
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import private_key_path
from tests.fixtures.psp import authorisation, host_context

pytestmark = pytest.mark.filterwarnings("ignore:.*TripleDES")

HOST = Iso8583Host(Acquirer(private_key_path("iso8583").read_bytes()))
BASE = build_authorisation(host_context(), authorisation(), stan="000001",
                           now=datetime(2026, 11, 22, tzinfo=UTC), p2pe_envelope=b"\x01abc")
TEXT_FIELDS = [k for k in BASE if k not in ("t", "52", "53", "55", "125")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mti=st.sampled_from(["0100", "0200", "0220", "0221", "0400", "0401", "0600", "0800",
                         "0300", "9999"]),
    field=st.sampled_from(TEXT_FIELDS),
    value=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    drop=st.sets(st.sampled_from([*TEXT_FIELDS, "125", "55"]), max_size=4),
)
def test_any_decodable_request_gets_an_answer(mti: str, field: str, value: str,
                                              drop: set[str]) -> None:
    """Mutated, truncated or unknown requests get an answer with a response code."""
    fields = {k: v for k, v in BASE.items() if k not in drop}
    fields["t"] = mti
    fields["11"] = f"{uuid.uuid4().int % 999_999 + 1:06d}"  # no dedup between examples
    spec = SPEC[field]
    if spec["len_type"] == 0:
        value = value.ljust(spec["max_len"])[: spec["max_len"]]
    fields[field] = value
    try:
        raw = encode(fields)
    except ValueError:
        return  # not even encodable: the terminal could never send it
    answer = HOST.handle(decode(raw))
    assert len(answer["39"]) == 2
    assert answer["t"][:2] == mti[:2] or answer["39"] == "30"


def test_echo_and_unknown_network_code() -> None:
    """0800 with DE 70 301 is an echo; another network code is refused with 12."""
    echo = build_echo(host_context(), stan="000777", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert HOST.handle(echo)["39"] == "00"
    assert HOST.handle({**echo, "11": "000778", "70": "001"})["39"] == "12"
