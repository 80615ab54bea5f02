-- A repair for databases of release 1a1c04a (migrations 0001 and 0003 only). Released 0005 adds
-- the foreign key from attempts to subscription_state before it fills subscription_state, so on
-- a database that already holds attempts it fails. Such a database's attempts are set aside here
-- and put back by 0005a, right after 0005 (whose triggers then make their subscriptions ready).
--
-- Everywhere else this does nothing: a new database holds no attempts, and a database already
-- past 0005 (where this file is applied late, out of order) has subscription_state. It copies
-- every attempt twice; the only databases it touches are those of the release before the first
-- one that kept checksums.
DO $$
BEGIN
    IF to_regclass('subscription_state') IS NULL AND EXISTS (SELECT FROM attempts) THEN
        CREATE TABLE upgrade_held_attempts AS TABLE attempts;
        TRUNCATE attempts;
    END IF;
END
$$;
