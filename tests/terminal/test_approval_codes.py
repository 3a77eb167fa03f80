"""One approval-code table: what the PSP classifier approves, the kernel approves (issue #12
item 9; ISO 8583:1987 DE 39 action codes)."""

from __future__ import annotations

import uuid

import pytest

from edge_sync.connectors import Amount, Operation, Outcome, Router, RouteRule
from edge_sync.connectors.classify import classify_iso
from edge_sync.connectors.fake import ScriptedConnector, response
from terminal.emv.online import OnlineRequest, OnlineResponse
from terminal.psp_routing import KernelAuthoriser

ALL_CODES = [f"{n:02d}" for n in range(100)]
# A test PAN (Visa test range), never a real card.
_ICC = {0x5A: bytes.fromhex("4761739001010010"), 0x5F24: bytes.fromhex("301231")}


@pytest.mark.parametrize("code", ALL_CODES)
def test_classifier_and_kernel_agree(code: str) -> None:
    """For every two-digit DE 39 code the classifier approves exactly when the kernel does."""
    psp_approves = classify_iso(code) is Outcome.APPROVE
    assert OnlineResponse(arc=code.encode()).approved is psp_approves


async def test_code_16_reaches_the_kernel_as_an_approval() -> None:
    """A host answering 16 ("approved, update track 3") gives the kernel an approving ARC."""
    connector = ScriptedConnector("acq", {Operation.AUTHORISE: [
        response(Outcome.APPROVE, "16", connector="acq")]})
    router = Router([RouteRule("all", ("acq",))], {"acq": connector}, {})
    bridge = KernelAuthoriser(router, uuid.uuid4(), Amount(2500, "MAD", 504, 2),
                              network="visa")
    answer = await bridge.authorise(OnlineRequest(aid=bytes.fromhex("A0000000031010"),
                                                  pan_masked="476173******0010", icc_data=_ICC))
    assert answer is not None
    assert answer.arc == b"16"
    assert answer.approved
