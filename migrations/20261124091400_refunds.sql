-- Refunds by operators, never more than the fee.
ALTER TABLE rentals ADD COLUMN refunded BIGINT NOT NULL DEFAULT 0
    CHECK (refunded >= 0 AND refunded <= coalesce(fee, 0));
