-- The transactional outbox: an event is written in the transaction that causes it and delivered
-- at least once afterwards, in `seq` order per aggregate (writers lock the aggregate's row before
-- appending, so `seq` follows commit order within one aggregate).
CREATE TABLE outbox (
    seq             BIGSERIAL PRIMARY KEY,
    id              UUID NOT NULL UNIQUE,
    aggregate_type  TEXT NOT NULL,
    aggregate_id    TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         JSONB NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at    TIMESTAMPTZ
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
