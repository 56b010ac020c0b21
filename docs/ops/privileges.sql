-- The privileges pgstore's statements need, checked statement by statement.
--
--   psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U root -d test -f docs/ops/privileges.sql
--
-- Run as a superuser on a test server whose pg_hba.conf lets the two roles
-- it creates connect without a password (trust): it creates the roles
-- pgstore_ops_app and pgstore_ops_pruner and the schema pgstore_ops_priv,
-- runs each statement the store sends as those roles (\c), and drops all of
-- it at the end. Statements that must fail are shown with their error.

SET client_min_messages = warning;
SELECT current_user AS admin \gset
DROP SCHEMA IF EXISTS pgstore_ops_priv CASCADE;
DROP ROLE IF EXISTS pgstore_ops_app;
DROP ROLE IF EXISTS pgstore_ops_pruner;
CREATE ROLE pgstore_ops_app LOGIN;
CREATE ROLE pgstore_ops_pruner LOGIN;
CREATE SCHEMA pgstore_ops_priv;
CREATE TABLE pgstore_ops_priv.user_sessions ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"));
CREATE INDEX ON pgstore_ops_priv.user_sessions ("expire");
INSERT INTO pgstore_ops_priv.user_sessions VALUES ('live', '{"user_id":1}', now() AT TIME ZONE 'UTC' + interval '1 day'),
  ('old', '{}', now() AT TIME ZONE 'UTC' - interval '1 day');

GRANT USAGE ON SCHEMA pgstore_ops_priv TO pgstore_ops_app, pgstore_ops_pruner;
GRANT SELECT, INSERT, UPDATE, DELETE ON pgstore_ops_priv.user_sessions TO pgstore_ops_app;
GRANT SELECT, DELETE ON pgstore_ops_priv.user_sessions TO pgstore_ops_pruner;

\echo '== Functions and schemas, as seen by pgstore_ops_app'
SELECT has_function_privilege('pgstore_ops_app', 'pg_try_advisory_lock(bigint)', 'EXECUTE') AS try_lock,
       has_function_privilege('pgstore_ops_app', 'pg_advisory_unlock(bigint)', 'EXECUTE') AS unlock,
       has_function_privilege('pgstore_ops_app', 'pg_advisory_xact_lock(bigint)', 'EXECUTE') AS xact_lock,
       has_schema_privilege('pgstore_ops_app', 'public', 'CREATE') AS create_in_public,
       has_schema_privilege('pgstore_ops_app', 'pgstore_ops_priv', 'CREATE') AS create_in_schema;

\c - pgstore_ops_app
SET client_min_messages = warning;
\echo '== pgstore_ops_app (SELECT, INSERT, UPDATE, DELETE; no CREATE): every statement of a running store'
SELECT (now() AT TIME ZONE 'UTC')::text IS NOT NULL AS probe;
SELECT relkind::text FROM pg_class WHERE oid = to_regclass('"pgstore_ops_priv"."user_sessions"');
SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
  WHERE i.indrelid = to_regclass('"pgstore_ops_priv"."user_sessions"') AND a.attname = 'expire') AS expire_index;
SET search_path = pgstore_ops_priv;
BEGIN;
SELECT sess, date_part('epoch', expire AT TIME ZONE 'UTC') FROM user_sessions WHERE sid = 'live';
INSERT INTO user_sessions (sid, sess, expire) VALUES ('new', '{}', (to_timestamp(extract(epoch FROM now()) + 60) AT TIME ZONE 'UTC'));
UPDATE user_sessions SET sess = '{"n":1}', expire = (to_timestamp(extract(epoch FROM now()) + 120) AT TIME ZONE 'UTC')
  WHERE sid = 'new' AND expire >= (to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC');
UPDATE user_sessions SET sess = '{"n":2}' WHERE sid = 'new' AND expire >= (to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC');
WITH gone AS (DELETE FROM user_sessions WHERE sid = 'new') INSERT INTO user_sessions (sid, sess, expire)
  VALUES ('newer', '{}', (to_timestamp(extract(epoch FROM now()) + 60) AT TIME ZONE 'UTC'));
DELETE FROM user_sessions WHERE sid = 'newer';
SELECT pg_try_advisory_lock(42) AS locked;
DELETE FROM user_sessions WHERE sid = ANY(ARRAY(SELECT sid FROM user_sessions
  WHERE expire < (to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC') ORDER BY expire LIMIT 1000 FOR UPDATE SKIP LOCKED));
SELECT pg_advisory_unlock(42) AS unlocked;
DELETE FROM user_sessions WHERE sess ->> 'user_id' = '1';
ROLLBACK;
BEGIN;
SELECT pg_advisory_xact_lock(43);
\echo 'Creating the table needs CREATE on the schema:'
\set ON_ERROR_STOP 0
CREATE TABLE pgstore_ops_priv.other ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"));
\set ON_ERROR_STOP 1
ROLLBACK;

\c - pgstore_ops_pruner
SET client_min_messages = warning;
SET search_path = pgstore_ops_priv;
\echo '== pgstore_ops_pruner (SELECT, DELETE only): the prune statement needs UPDATE too (FOR UPDATE)'
\set ON_ERROR_STOP 0
DELETE FROM user_sessions WHERE sid = ANY(ARRAY(SELECT sid FROM user_sessions
  WHERE expire < (to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC') ORDER BY expire LIMIT 1000 FOR UPDATE SKIP LOCKED));
\set ON_ERROR_STOP 1
\echo 'Preparing a statement it may not run succeeds; the check comes when it runs (so New works for this role):'
PREPARE ins AS INSERT INTO user_sessions (sid, sess, expire) VALUES ($1, $2, (to_timestamp($3) AT TIME ZONE 'UTC'));
\set ON_ERROR_STOP 0
EXECUTE ins('x', '{}', 0);
\set ON_ERROR_STOP 1

\c - :admin
SET client_min_messages = warning;
GRANT UPDATE ON pgstore_ops_priv.user_sessions TO pgstore_ops_pruner;
\c - pgstore_ops_pruner
SET search_path = pgstore_ops_priv;
\echo '== pgstore_ops_pruner with SELECT, UPDATE, DELETE: prunes'
DELETE FROM user_sessions WHERE sid = ANY(ARRAY(SELECT sid FROM user_sessions
  WHERE expire < (to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC') ORDER BY expire LIMIT 1000 FOR UPDATE SKIP LOCKED));

\c - :admin
SET client_min_messages = warning;
DROP SCHEMA pgstore_ops_priv CASCADE;
DROP ROLE pgstore_ops_app;
DROP ROLE pgstore_ops_pruner;
