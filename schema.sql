-- The sessions table used by pgstore. It has the same shape as the table
-- connect-pg-simple creates, so Go and Node can share it.
--
-- pgstore.New runs this itself (unless Config.SkipCreateTable is set) with
-- the table name and schema from its Config, and leaves the constraint and
-- index names to PostgreSQL so that they never clash with another table's.
-- For the default table PostgreSQL picks the names written here,
-- user_sessions_pkey and user_sessions_expire_idx (unless another relation
-- in the schema already has one), so migrations can refer to them by name.
-- Run it yourself, for example with psql -f schema.sql, when the
-- application's role may not create tables. In Express mode (sharing the
-- table with Node) New also needs tombstones.sql; see its header.

CREATE TABLE IF NOT EXISTS "user_sessions" (
  "sid" varchar NOT NULL COLLATE "default",
  "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL,
  CONSTRAINT "user_sessions_pkey" PRIMARY KEY ("sid")
);

CREATE INDEX IF NOT EXISTS "user_sessions_expire_idx" ON "user_sessions" ("expire");

-- Revoke reads a key of sess through this function, and so must an
-- expression index meant to serve it (docs/operations.md):
--
--   CREATE INDEX ON "user_sessions" ("pgstore_sess_text"(sess, 'user_id'));
--
-- It returns what sess ->> key returns, without its failure: PostgreSQL's
-- json operators de-escape every string in the document, and fail (SQLSTATE
-- 22P05 or 22P02) when any of them, under any key, holds \u0000 or half a
-- surrogate pair. The json type accepts both, and Node writes them, so one
-- such session would make every Revoke fail and every such index build
-- fail. A value that holds one is NULL here, as no text can equal it. Such
-- documents, and only they, take the slow path: escaped backslashes and
-- whole surrogate pairs are set aside, each unreadable escape is replaced by
-- a stand-in character the key does not hold, and the key is read twice,
-- with two different stand-ins; a value that differs between the two held
-- one. The database must be UTF8. Rerunning this file is harmless; New
-- creates the function when it is missing (it needs CREATE on the schema).
CREATE OR REPLACE FUNCTION "pgstore_sess_text"(sess json, key text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  doc text := sess::text;
  bad constant text := E'\\\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})';
  stand_in int := 1;
  a text;
  b text;
BEGIN
  IF strpos(doc, E'\\u') = 0 OR doc !~ bad THEN
    RETURN sess ->> key;
  END IF;
  doc := replace(doc, E'\\\\', chr(1));
  doc := regexp_replace(doc, E'\\\\u([dD][89abAB][0-9a-fA-F]{2})\\\\u([dD][c-fC-F][0-9a-fA-F]{2})',
    chr(2) || E'\\1' || chr(2) || E'\\2', 'g');
  WHILE strpos(key, chr(stand_in)) > 0 LOOP
    stand_in := stand_in + 1;
  END LOOP;
  a := replace(replace(regexp_replace(doc, bad, E'\\\\u' || lpad(to_hex(stand_in), 4, '0'), 'g'),
    chr(2), E'\\u'), chr(1), E'\\\\')::json ->> key;
  stand_in := stand_in + 1;
  WHILE strpos(key, chr(stand_in)) > 0 LOOP
    stand_in := stand_in + 1;
  END LOOP;
  b := replace(replace(regexp_replace(doc, bad, E'\\\\u' || lpad(to_hex(stand_in), 4, '0'), 'g'),
    chr(2), E'\\u'), chr(1), E'\\\\')::json ->> key;
  RETURN CASE WHEN a = b THEN a END;
END
$$;
