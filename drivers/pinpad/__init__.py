"""The serial PIN pad: link framing, messages, the pyserial driver and an in-process fake.

Protocol reference for device makers: ``drivers/PROTOCOL.md``.
"""

from drivers.pinpad.fake import FakePinPad
from drivers.pinpad.serial_pinpad import SerialPinPad, map_serial_error

__all__ = ["FakePinPad", "SerialPinPad", "map_serial_error"]
