-- PSP connectors: the systems trace audit numbers (ISO 8583 DE 11) handed out per
-- connector, so that a restarted terminal never reuses a STAN an acquirer has seen.
-- high_water only grows; the STAN is ((n - 1) mod 999999) + 1. See terminal/store/psp_trace.py.
CREATE TABLE psp_trace (
    connector  TEXT PRIMARY KEY,
    high_water INTEGER NOT NULL CHECK (high_water >= 0)
);
