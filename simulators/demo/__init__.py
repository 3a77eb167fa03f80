"""``etika demo``: the whole counter on one machine, every other side simulated.

``etika demo`` opens the counter UI (on a TTY) with a card shelf; ``etika demo --headless
--transactions N --json`` runs a scripted mix of payments and prints one JSON summary whose
totals the terminal, the platform, the PSP simulator and the PoP ledger must agree on.
"""
