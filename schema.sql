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
