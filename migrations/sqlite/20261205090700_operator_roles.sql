-- Operator roles (see ../20261205090700_operator_roles.sql).
ALTER TABLE users ADD COLUMN operator_role TEXT CHECK (
    operator_role IS NULL OR (role = 'admin' AND operator_role IN ('support', 'technician', 'viewer'))
);
