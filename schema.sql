-- The sessions table used by pgstore. It has the same shape as the table
-- connect-pg-simple creates, so Go and Node can share it.
--
-- pgstore.New runs this itself (unless Config.SkipCreateTable is set), with
-- the table name, schema and the constraint and index names adjusted to
-- Config.TableName and Config.SchemaName. Run it yourself, for example with
-- psql -f schema.sql, when the application's role may not create tables.

CREATE TABLE IF NOT EXISTS "user_sessions" (
  "sid" varchar NOT NULL COLLATE "default",
  "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL,
  CONSTRAINT "user_sessions_pkey" PRIMARY KEY ("sid")
);

CREATE INDEX IF NOT EXISTS "IDX_user_sessions_expire" ON "user_sessions" ("expire");
