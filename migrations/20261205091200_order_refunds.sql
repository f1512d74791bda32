-- Operators refund completed orders (issue 23): what was given back so far, never more than the
-- total.
ALTER TABLE orders ADD COLUMN refunded BIGINT NOT NULL DEFAULT 0
    CHECK (refunded >= 0 AND refunded <= total);
