-- The uplink counter of the ack that answered a command: whether a report of the doors came after
-- it, with nothing the locker sent in between still on its way (several gateways record one
-- locker's uplinks out of order).
ALTER TABLE commands ADD COLUMN answer_counter BIGINT;
