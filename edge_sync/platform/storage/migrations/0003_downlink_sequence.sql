-- The last downlink sequence given to each terminal per kind (#12 item 1): terminals apply
-- only a downlink whose signed seq is above the newest they applied, so the platform hands
-- them out strictly increasing, across workers (one row update in a transaction).

CREATE TABLE IF NOT EXISTS platform_downlink_sequence (
        terminal_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (terminal_id, kind));
