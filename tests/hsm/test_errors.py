"""Every python-pkcs11 exception maps to an HsmError leaf that says what to do."""

from __future__ import annotations

import inspect

import pkcs11.exceptions as p11
import pytest

from etika_errors import EtikaError
from hsm import errors
from hsm.errors import (
    PKCS11_ERROR_MAP,
    HsmError,
    KeyImportFailedError,
    KeyMissingError,
    ModuleMissingError,
    PinLockedError,
    TokenFullError,
    TokenMissingError,
    VaultBlobInvalidError,
    WrongPinError,
    map_pkcs11_error,
)

ALL_PKCS11_ERRORS = sorted(
    (cls for cls in vars(p11).values()
     if inspect.isclass(cls) and issubclass(cls, p11.PKCS11Error)),
    key=lambda cls: cls.__name__,
)


def test_the_table_names_every_python_pkcs11_exception() -> None:
    """PKCS11_ERROR_MAP has exactly the classes pkcs11.exceptions defines: none falls through."""
    assert set(PKCS11_ERROR_MAP) == set(ALL_PKCS11_ERRORS)


@pytest.mark.parametrize("cls", ALL_PKCS11_ERRORS, ids=lambda cls: cls.__name__)
def test_each_exception_maps_to_an_hsm_error_with_advice(cls: type[p11.PKCS11Error]) -> None:
    """Each class becomes an HsmError whose message says where and what to do."""
    mapped = map_pkcs11_error(cls(), where="testing the map", key_label="etika-vault-v1")
    assert isinstance(mapped, HsmError) and isinstance(mapped, EtikaError)
    advice = ("run etika", "check", "install", "reset", "delete")
    assert any(phrase in mapped.message for phrase in advice), mapped.message


@pytest.mark.parametrize(
    ("library_error",                 "leaf",              "says"),
    [
        (p11.PinIncorrect,                WrongPinError,            "refused the user PIN"),
        (p11.PinLenRange,                 WrongPinError,            "refused the user PIN"),
        (p11.PinLocked,                        PinLockedError,           "locked"),
        (p11.NoSuchToken,                 TokenMissingError,        "run etika hsm init"),
        (p11.TokenNotPresent,             TokenMissingError,        "run etika hsm init"),
        (p11.NoSuchKey,                   KeyMissingError,          "not in the token"),
        (p11.DeviceMemory,                TokenFullError,           "is full"),
        (p11.WrappedKeyInvalid,           KeyImportFailedError,     "transport key"),
        (p11.UnwrappingKeyHandleInvalid,  KeyImportFailedError,     "transport key"),
        (p11.DeviceError,                 HsmError,            "etika hsm status"),
    ],
)
def test_recovery_actions(library_error: type[p11.PKCS11Error], leaf: type[HsmError],
                          says: str) -> None:
    """Errors with a distinct recovery action get their own leaf and message."""
    mapped = map_pkcs11_error(library_error(), where="doing a thing", key_label="etika-x-v1")
    assert type(mapped) is leaf
    assert says in mapped.message


@pytest.mark.parametrize("cls", [p11.GeneralError, p11.EncryptedDataInvalid,
                                 p11.EncryptedDataLenRange, p11.FunctionFailed])
def test_vault_failures_only_while_opening_a_blob(cls: type[p11.PKCS11Error]) -> None:
    """A failed GCM check is VaultBlobInvalidError when opening a blob, a device fault elsewhere."""
    assert type(map_pkcs11_error(cls(), where="x", opening_vault=True)) is VaultBlobInvalidError
    assert type(map_pkcs11_error(cls(), where="x")) is HsmError


def test_module_missing_says_what_to_install() -> None:
    """ModuleMissingError names the module and tells to install softhsm2 or set the variable."""
    error = ModuleMissingError("/nowhere/lib.so", "cannot open shared object file")
    assert "install softhsm2 or set ETIKA_PKCS11_MODULE" in str(error)
    assert error.fields["module"] == "/nowhere/lib.so"


def test_tree_in_docstring_lists_every_leaf() -> None:
    """The module docstring draws every HsmError subclass the module defines."""
    leaves = [name for name, obj in vars(errors).items()
              if inspect.isclass(obj) and issubclass(obj, HsmError)]
    for name in leaves:
        assert name in (errors.__doc__ or ""), name
