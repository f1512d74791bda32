-- Operator roles (issue 23): an operator account (role `admin`) is a full administrator unless
-- `operator_role` narrows it: `support` (no money movements, no revocation), `technician`
-- (maintenance unlocks and door service only) or `viewer` (read only). Customers (role `user`)
-- have none.
ALTER TABLE users ADD COLUMN operator_role TEXT;
ALTER TABLE users ADD CONSTRAINT users_operator_role CHECK (
    operator_role IS NULL OR (role = 'admin' AND operator_role IN ('support', 'technician', 'viewer'))
);
