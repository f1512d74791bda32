-- A new rental, its deposit held and the hold's ledger entry, in one round trip, within the
-- user's running-rentals limit: the user's row is locked first, and the count that follows reads
-- a fresh snapshot (each statement of a PL/pgSQL function does, in READ COMMITTED), so a parallel
-- request of the same user waits for the lock and then counts this rental. Answers 'created',
-- 'no_funds', or 'too_many:N'. A taken door is the unique index's violation, as before.
CREATE FUNCTION rental_create_holding(
    p_id UUID, p_user UUID, p_device TEXT, p_door INTEGER, p_plan UUID, p_terms JSONB,
    p_deposit BIGINT, p_now TIMESTAMPTZ, p_reference TEXT, p_max BIGINT
) RETURNS TEXT LANGUAGE plpgsql AS $$
DECLARE
    running BIGINT;
    w_id UUID;
    w_available BIGINT;
    w_held BIGINT;
BEGIN
    PERFORM 1 FROM users WHERE id = p_user FOR UPDATE;
    SELECT count(*) INTO running FROM rentals
     WHERE user_id = p_user AND state IN ('pending', 'active', 'ending');
    IF running >= p_max THEN
        RETURN 'too_many:' || running;
    END IF;
    IF p_deposit > 0 THEN
        UPDATE wallets SET available = available - p_deposit, held = held + p_deposit,
               version = version + 1, updated_at = p_now
         WHERE user_id = p_user AND available >= p_deposit
        RETURNING id, available, held INTO w_id, w_available, w_held;
        IF w_id IS NULL THEN
            RETURN 'no_funds';
        END IF;
        INSERT INTO ledger (wallet_id, kind, available_delta, held_delta, available_after,
                            held_after, reference)
        VALUES (w_id, 'hold', -p_deposit, p_deposit, w_available, w_held, p_reference);
    END IF;
    INSERT INTO rentals (id, user_id, device_id, door, state, plan_id, terms, deposit_held,
                         created_at)
    VALUES (p_id, p_user, p_device, p_door, 'pending', p_plan, p_terms, p_deposit, p_now);
    RETURN 'created';
END
$$;
