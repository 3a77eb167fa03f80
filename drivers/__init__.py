"""Hardware links: PC/SC card reader and serial PIN pad.

Imports nothing of ours but the error root (``etika_errors``).
"""
