"""``etika hsm status --json`` is written field by field (typed JSON, no ``asdict``): a
field added to the status or to a key must reach the JSON too, not be dropped silently."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from hsm.keys import KeyInfo
from hsm.keystore import KeyInfoJson, KeyStoreStatus, KeyStoreStatusJson


@pytest.mark.parametrize(
    ("record",        "json_shape"),
    [
        (KeyInfo,         KeyInfoJson),
        (KeyStoreStatus,  KeyStoreStatusJson),
    ],
)
def test_the_json_shape_names_every_field(record: type, json_shape: type) -> None:
    """The JSON TypedDict and the dataclass it renders have the same field names."""
    assert set(typing.get_type_hints(json_shape)) == {f.name for f in dataclasses.fields(record)}
