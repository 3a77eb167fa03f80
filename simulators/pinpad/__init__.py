"""The PIN pad simulator (device side, on a pty) and the acquirer's PIN verification.

``host`` is the acquirer's side (BDK → PIN) for the PSP simulator; ``device``/``server``
are the PIN pad; ``dukpt`` and ``pinblock`` are the pure cryptography both share.
"""
