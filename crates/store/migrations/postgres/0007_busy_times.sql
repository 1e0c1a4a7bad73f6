-- calbridge store schema, version 7 (PostgreSQL): what availability reads, beside each event.
--
-- `busy_as` is the event's show-as (`busy`, `tentative`, `oof`, ...) when the event can claim
-- time: NULL for a cancelled event and for a series master (a series claims time through its
-- instances). Availability queries read it with the calendar and the range columns from one
-- covering index, without decoding any event's content. Every write of an event sets it from
-- the content (`common::busy_as`); the rows already stored get it here from their JSON.

ALTER TABLE events ADD COLUMN busy_as TEXT;

UPDATE events SET busy_as = CASE
    WHEN (data::jsonb ->> 'cancelled')::boolean OR data::jsonb -> 'series' ->> 'kind' = 'master' THEN NULL
    ELSE data::jsonb ->> 'show_as'
END;

-- The old index is a prefix of this one, so it goes.
DROP INDEX events_by_calendar_time;
CREATE INDEX events_by_calendar_time ON events (calendar_id, start_us, end_us) INCLUDE (deleted, busy_as);

-- Events longer than a day, by calendar and start: a busy-times query reads the others by
-- start from one day before its range, and these from here (`common::BusyArm`).
CREATE INDEX events_long ON events (calendar_id, start_us) INCLUDE (end_us, deleted, busy_as)
    WHERE end_us - start_us > 86400000000;
