-- Tombstones: what makes a logout final when Node shares the table
-- (Express mode, Config.ExpressSecrets). connect-pg-simple saves a session
-- with an upsert, so a Node request that loaded a session before it was
-- deleted would insert it again when it saves. Here every delete of a live
-- session leaves its sid in a tombstone table for an hour, and an insert of
-- a tombstoned sid is undone in the same statement.
--
-- pgstore.New runs this itself in Express mode (unless
-- Config.SkipCreateTable is set; then New checks that it has been run), with
-- the schema, table and TimeZone from its Config. It is written for the
-- default table, "public"."user_sessions", with TimeZone 'UTC'. Run it
-- yourself, for example with psql -f tombstones.sql, after replacing
-- "public" with the table's schema, user_sessions with the table's name
-- (everywhere, including in "user_sessions_tombstones", unless the name
-- is longer than 52 bytes: then take the names from New's error) and
-- 'UTC' with Config.TimeZone. Running it again changes nothing.
--
-- The trigger function is SECURITY DEFINER so that a Node app connecting
-- as another role needs no privilege on the tombstone table; run this as
-- a role that may read and delete sessions.

-- The table holds at most an hour of deletions; the store's pruner
-- deletes expired tombstones with the expired sessions, by a scan.
CREATE TABLE IF NOT EXISTS "public"."user_sessions_tombstones" (
  "sid" varchar NOT NULL COLLATE "default" PRIMARY KEY,
  "expire" timestamptz NOT NULL
);

-- After a delete, the sid is recorded; after an insert, a tombstoned sid
-- is deleted again. The check runs after the insert, not before it: an
-- insert that waited for a concurrent delete of the same sid to commit
-- sees that delete's tombstone only then.
CREATE OR REPLACE FUNCTION "public"."user_sessions_tombstones"() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $pgstore$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO "public"."user_sessions_tombstones" AS t ("sid", "expire")
    VALUES (OLD."sid", now() + interval '1 hour')
    ON CONFLICT ("sid") DO UPDATE SET "expire" = GREATEST(t."expire", EXCLUDED."expire");
  ELSIF EXISTS (SELECT 1 FROM "public"."user_sessions_tombstones" WHERE "sid" = NEW."sid" AND "expire" > now()) THEN
    DELETE FROM "public"."user_sessions" WHERE "sid" = NEW."sid";
  END IF;
  RETURN NULL;
END
$pgstore$;

-- Only live sessions get a tombstone: pruning expired rows adds none.
DO $pgstore_trigger$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '"public"."user_sessions"'::regclass AND tgname = 'pgstore_tombstone_record') THEN
    CREATE TRIGGER "pgstore_tombstone_record" AFTER DELETE ON "public"."user_sessions" FOR EACH ROW
    WHEN (OLD."expire" >= (now() AT TIME ZONE 'UTC'))
    EXECUTE FUNCTION "public"."user_sessions_tombstones"();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '"public"."user_sessions"'::regclass AND tgname = 'pgstore_tombstone_check') THEN
    CREATE TRIGGER "pgstore_tombstone_check" AFTER INSERT ON "public"."user_sessions" FOR EACH ROW
    EXECUTE FUNCTION "public"."user_sessions_tombstones"();
  END IF;
END
$pgstore_trigger$;
