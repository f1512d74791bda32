-- The gateway whose request sent a command (its LOCKER_GATEWAY_ID): only a gateway whose lease
-- expired has its commands in flight taken over by the others (marked unknown, the locker asked).
ALTER TABLE commands ADD COLUMN gateway TEXT;
CREATE INDEX commands_in_flight_by_gateway ON commands (gateway) WHERE state IN ('pending', 'sent');
