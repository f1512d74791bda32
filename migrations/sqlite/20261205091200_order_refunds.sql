-- Operators refund completed orders (see ../20261205091200_order_refunds.sql).
ALTER TABLE orders ADD COLUMN refunded INTEGER NOT NULL DEFAULT 0
    CHECK (refunded >= 0 AND refunded <= total);
