-- The privileges pgstore's statements need, checked statement by statement.
--
--   psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U root -d test -f docs/ops/privileges.sql
--
-- Run as a superuser on a test server whose pg_hba.conf lets the two roles
-- it creates connect without a password (trust). It creates a schema,
-- pgstore_ops_priv_ and a random suffix (or -v schema=NAME, which must not
-- exist yet), and two roles named after it, SCHEMA_app and SCHEMA_pruner, so
-- runs on a shared server do not collide; runs each statement the store
-- sends as those roles (\c), and drops all of it at the end. If a run stops
-- on an error, the schema and roles it printed at the start are left behind:
-- drop them by hand. Statements that must fail are shown with their error.
-- The statements are the store's (pgstore.go, prune.go, revoke.go), with
-- literal values in place of parameters.

\if :{?schema}
\else
  SELECT 'pgstore_ops_priv_' || substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()), 1, 8) AS schema \gset
\endif
SELECT :'schema' || '_app' AS app, :'schema' || '_pruner' AS pruner,
       hashtext(:'schema')::bigint AS lockkey, hashtext(:'schema')::bigint + 1 AS xactkey \gset
\echo 'working in schema' :"schema" 'with roles' :"app" 'and' :"pruner"
SET client_min_messages = warning;
SELECT current_user AS admin \gset
CREATE ROLE :"app" LOGIN;
CREATE ROLE :"pruner" LOGIN;
CREATE SCHEMA :"schema";
CREATE TABLE :"schema".user_sessions ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"));
CREATE INDEX ON :"schema".user_sessions ("expire");
-- The function Revoke reads sess through, from schema.sql (whose table
-- this script has just made).
SET search_path = :"schema";
\ir ../../schema.sql
RESET search_path;
INSERT INTO :"schema".user_sessions VALUES ('live', '{"user_id":1}', now() AT TIME ZONE 'UTC' + interval '1 day'),
  ('old', '{}', now() AT TIME ZONE 'UTC' - interval '1 day');

GRANT USAGE ON SCHEMA :"schema" TO :"app", :"pruner";
GRANT SELECT, INSERT, UPDATE, DELETE ON :"schema".user_sessions TO :"app";
GRANT SELECT, DELETE ON :"schema".user_sessions TO :"pruner";

\echo '== Functions and schemas, as seen by the app role'
SELECT has_function_privilege(:'app', 'pg_try_advisory_lock(bigint)', 'EXECUTE') AS try_lock,
       has_function_privilege(:'app', 'pg_advisory_unlock(bigint)', 'EXECUTE') AS unlock,
       has_function_privilege(:'app', 'pg_advisory_xact_lock(bigint)', 'EXECUTE') AS xact_lock,
       has_schema_privilege(:'app', 'public', 'CREATE') AS create_in_public,
       has_schema_privilege(:'app', :'schema', 'CREATE') AS create_in_schema;

\c - :"app"
SET client_min_messages = warning;
\echo '== the app role (SELECT, INSERT, UPDATE, DELETE; no CREATE): every statement of a running store'
SELECT (now() AT TIME ZONE 'UTC')::text IS NOT NULL AS probe;
SELECT relkind::text FROM pg_class WHERE oid = to_regclass(format('%I.%I', :'schema', 'user_sessions'));
SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
  WHERE i.indrelid = to_regclass(format('%I.%I', :'schema', 'user_sessions')) AND a.attname = 'expire') AS expire_index;
SET search_path = :"schema";
BEGIN;
SELECT sess, date_part('epoch', expire AT TIME ZONE 'UTC'), date_part('epoch', now()) FROM user_sessions WHERE sid = 'live';
INSERT INTO user_sessions (sid, sess, expire) VALUES ('new', '{}', (to_timestamp(extract(epoch FROM now()) + 60) AT TIME ZONE 'UTC'));
UPDATE user_sessions SET sess = '{"n":1}', expire = (to_timestamp(extract(epoch FROM now()) + 120) AT TIME ZONE 'UTC')
  WHERE sid = 'new' AND expire >= (now() AT TIME ZONE 'UTC');
UPDATE user_sessions SET sess = '{"n":2}' WHERE sid = 'new' AND expire >= (now() AT TIME ZONE 'UTC');
WITH gone AS (DELETE FROM user_sessions WHERE sid = 'new' AND expire >= (now() AT TIME ZONE 'UTC') RETURNING 1)
  INSERT INTO user_sessions (sid, sess, expire) SELECT 'newer', '{}', (to_timestamp(extract(epoch FROM now()) + 60) AT TIME ZONE 'UTC') FROM gone;
SELECT EXISTS (SELECT 1 FROM user_sessions WHERE sid = 'newer');
DELETE FROM user_sessions WHERE sid = 'newer';
SELECT pg_try_advisory_lock(:lockkey) AS locked;
DELETE FROM user_sessions WHERE sid = ANY(ARRAY(SELECT sid FROM user_sessions
  WHERE expire < LEAST(to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') ORDER BY expire LIMIT 1000 FOR UPDATE SKIP LOCKED));
SELECT pg_advisory_unlock(:lockkey) AS unlocked;
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
DELETE FROM user_sessions WHERE pgstore_sess_text(sess, 'user_id') = '1' AND sid <> '';
ROLLBACK;
BEGIN;
SELECT pg_advisory_xact_lock(:xactkey);
\echo 'Creating the table needs CREATE on the schema:'
\set ON_ERROR_STOP 0
CREATE TABLE :"schema".other ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL, "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"));
\set ON_ERROR_STOP 1
ROLLBACK;

\c - :"pruner"
SET client_min_messages = warning;
SET search_path = :"schema";
\echo '== the pruner role (SELECT, DELETE only): the prune statement needs UPDATE too (FOR UPDATE)'
\set ON_ERROR_STOP 0
DELETE FROM user_sessions WHERE sid = ANY(ARRAY(SELECT sid FROM user_sessions
  WHERE expire < LEAST(to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') ORDER BY expire LIMIT 1000 FOR UPDATE SKIP LOCKED));
\set ON_ERROR_STOP 1
\echo 'Preparing a statement it may not run succeeds; the check comes when it runs (so New works for this role):'
PREPARE ins AS INSERT INTO user_sessions (sid, sess, expire) VALUES ($1, $2, (to_timestamp($3) AT TIME ZONE 'UTC'));
\set ON_ERROR_STOP 0
EXECUTE ins('x', '{}', 0);
\set ON_ERROR_STOP 1

\c - :admin
SET client_min_messages = warning;
GRANT UPDATE ON :"schema".user_sessions TO :"pruner";
\c - :"pruner"
SET search_path = :"schema";
\echo '== the pruner role with SELECT, UPDATE, DELETE: prunes'
DELETE FROM user_sessions WHERE sid = ANY(ARRAY(SELECT sid FROM user_sessions
  WHERE expire < LEAST(to_timestamp(extract(epoch FROM now())) AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') ORDER BY expire LIMIT 1000 FOR UPDATE SKIP LOCKED));

\c - :admin
SET client_min_messages = warning;
DROP SCHEMA :"schema" CASCADE;
DROP ROLE :"app";
DROP ROLE :"pruner";
