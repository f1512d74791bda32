-- A locker's MQTT password sealed with LOCKER_SECRETS_KEY (see the PostgreSQL migration).
ALTER TABLE devices ADD COLUMN mqtt_password_sealed BLOB;
