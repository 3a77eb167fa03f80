"""Child process for the crash test: writes state changes to a store until it is killed."""

from __future__ import annotations

import sys
import uuid

from terminal.store import OutboxMessage, StateChange, Store


def main(path: str) -> None:
    store = Store.open(path)
    print("ready", flush=True)
    while True:
        payment_id = str(uuid.uuid4())
        for state, kind in (("created", "transaction"), ("authorising", None),
                            ("completed", "pop_record")):
            outbox = [OutboxMessage("platform", kind, {"id": payment_id, "state": state},
                                    payment_id)] if kind else []
            fields = {"amount_minor": 1250, "currency": "MAD"} if state == "created" else {}
            store.record(StateChange("payment", payment_id, state, fields, outbox))


if __name__ == "__main__":
    main(sys.argv[1])
