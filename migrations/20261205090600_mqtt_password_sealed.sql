-- A locker's MQTT password sealed with the operator's LOCKER_SECRETS_KEY (ChaCha20-Poly1305: a
-- 12-byte nonce, then ciphertext and tag), for a broker the gateways must tell it (Mosquitto's
-- dynamic-security plugin). NULL without a key, or for a locker provisioned before one was set.
ALTER TABLE devices ADD COLUMN mqtt_password_sealed BYTEA;
