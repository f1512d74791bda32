-- The uplink counter of the ack that answered a command.
ALTER TABLE commands ADD COLUMN answer_counter INTEGER;
