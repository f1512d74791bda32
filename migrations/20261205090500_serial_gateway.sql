-- The gateway whose serial line a lock board hangs on (its LOCKER_GATEWAY_ID), set when that
-- gateway's bus starts: the fleet's other gateways seal the board's downlinks in binary and
-- publish them on its `down` topic, and the gateway holding the line relays them to the board.
-- NULL for a locker on MQTT.
ALTER TABLE devices ADD COLUMN serial_gateway TEXT;
