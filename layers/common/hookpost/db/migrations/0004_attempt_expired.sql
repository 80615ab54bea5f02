-- An attempt not sent before its event's expires_at ends as 'expired'. A value of its own
-- migration: a new enum value cannot be used in the transaction that adds it.
ALTER TYPE attempt_status ADD VALUE IF NOT EXISTS 'expired';
