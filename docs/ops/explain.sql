-- Plans of pgstore's statements on a table of 1,000,000 sessions.
--
--   psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U root -d test -f docs/ops/explain.sql
--
-- Fills a scratch copy of schema.sql's table, prepares each statement with
-- the text pgstore.go, prune.go and revoke.go send (default TimeZone, UTC),
-- and shows its plan as a custom plan (planned for the given values) and as
-- a generic plan (planned once for any values, as PostgreSQL may do after a
-- prepared statement's fifth run). Statements that write run inside a
-- rolled-back transaction.
--
-- It works in a schema of its own, pgstore_ops_explain_ and a random
-- suffix (or -v schema=NAME, which must not exist yet), so runs on a shared
-- server do not collide, and drops it at the end. If a run stops on an
-- error, the schema it printed at the start is left behind: drop it by hand.
-- -v rows=N fills another number of rows.
--
-- The rows are laid out around the database's now(), which the statements
-- compare with as the store's do: about the 10,000 oldest have expired
-- (one every 2.592 s of a 30-day spread), and the rest have not.

\if :{?rows}
\else
  \set rows 1000000
\endif
\if :{?schema}
\else
  SELECT 'pgstore_ops_explain_' || substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()), 1, 8) AS schema \gset
\endif
\echo 'working in schema' :"schema"
SET client_min_messages = warning;
CREATE SCHEMA :"schema";

CREATE TABLE :"schema".user_sessions ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"));
CREATE INDEX ON :"schema".user_sessions ("expire");
-- The function Revoke reads sess through, from schema.sql (whose table
-- this script has just made).
SET search_path = :"schema";
\ir ../../schema.sql
RESET search_path;

SELECT floor(extract(epoch FROM now()))::bigint AS nowepoch \gset
SELECT :nowepoch - 2617920 AS base, :nowepoch + 2592000 AS expepoch \gset
INSERT INTO :"schema".user_sessions
SELECT translate(rtrim(encode(sha256(convert_to('s' || g, 'UTF8')), 'base64'), '='), '+/', '-_'),
       ('{"_pgstore":{"created":' || (:base + floor(g * 2.592))::bigint || '},"csrf":"' || md5(g::text) ||
         '","user":"alice@example.com","user_id":' || (10000 + g % 90000) || '}')::json,
       to_timestamp(round((:base + g * 2.592 + 2592000)::numeric, 3)::float8) AT TIME ZONE 'UTC'
FROM generate_series(1, :rows) g;
VACUUM ANALYZE :"schema".user_sessions;

-- A live session (the middle row).
SELECT translate(rtrim(encode(sha256(convert_to('s' || (:rows / 2), 'UTF8')), 'base64'), '='), '+/', '-_') AS live \gset
\set newsess '{"_pgstore":{"created":1765497600},"csrf":"c4ca4238a0b923820dcc509a6f75849b","user":"alice@example.com","user_id":12345,"n":2}'

PREPARE load AS SELECT sess, date_part('epoch', expire AT TIME ZONE 'UTC'), date_part('epoch', now()) FROM :"schema"."user_sessions" WHERE sid = $1;
PREPARE ins AS INSERT INTO :"schema"."user_sessions" (sid, sess, expire) VALUES ($1, $2, (to_timestamp($3) AT TIME ZONE 'UTC'));
PREPARE upd AS UPDATE :"schema"."user_sessions" SET sess = $2, expire = (to_timestamp($3) AT TIME ZONE 'UTC') WHERE sid = $1 AND expire >= (now() AT TIME ZONE 'UTC');
PREPARE updvalues AS UPDATE :"schema"."user_sessions" SET sess = $2 WHERE sid = $1 AND expire >= (now() AT TIME ZONE 'UTC');
PREPARE del AS DELETE FROM :"schema"."user_sessions" WHERE sid = $1;
PREPARE regen AS WITH gone AS (DELETE FROM :"schema"."user_sessions" WHERE sid = $1 AND expire >= (now() AT TIME ZONE 'UTC') RETURNING 1) INSERT INTO :"schema"."user_sessions" (sid, sess, expire) SELECT $2, $3, (to_timestamp($4) AT TIME ZONE 'UTC') FROM gone;
PREPARE prune AS DELETE FROM :"schema"."user_sessions" WHERE sid = ANY(ARRAY(SELECT sid FROM :"schema"."user_sessions" WHERE expire < LEAST(to_timestamp($1) AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') ORDER BY expire LIMIT $2 FOR UPDATE SKIP LOCKED));
PREPARE revoke AS DELETE FROM :"schema"."user_sessions" WHERE :"schema"."pgstore_sess_text"(sess, 'user_id') = $1 AND sid <> $2;

\echo
\echo '== load (Get), custom and generic plan'
SET plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE load(:'live');
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE load(:'live');

\echo '== update that moves expire (Save, touch), custom and generic'
BEGIN;
SET LOCAL plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE upd(:'live', :'newsess', :expepoch);
ROLLBACK;
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE upd(:'live', :'newsess', :expepoch);
ROLLBACK;

\echo '== values-only update (Save within TouchInterval), generic'
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE updvalues(:'live', :'newsess');
ROLLBACK;

\echo '== insert (Save of a new session), delete (logout), regenerate, generic'
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE ins('brand-new-id-0000000000000000000000000000', :'newsess', :expepoch);
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE del(:'live');
ROLLBACK;
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE regen(:'live', 'brand-new-id-0000000000000000000000000000', :'newsess', :expepoch);
ROLLBACK;

\echo '== prune batch (1,000 of the 10,000 expired rows), custom and generic'
BEGIN;
SET LOCAL plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE prune(:nowepoch, 1000);
ROLLBACK;
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE prune(:nowepoch, 1000);
ROLLBACK;

\echo '== prune batch: what plan_cache_mode = auto (the default) picks after 6 runs'
BEGIN;
SET LOCAL plan_cache_mode = auto;
EXECUTE prune(:nowepoch, 1000); EXECUTE prune(:nowepoch, 1000); EXECUTE prune(:nowepoch, 1000);
EXECUTE prune(:nowepoch, 1000); EXECUTE prune(:nowepoch, 1000); EXECUTE prune(:nowepoch, 1000);
EXPLAIN (COSTS OFF) EXECUTE prune(:nowepoch, 1000);
ROLLBACK;

\echo '== What the function costs on a full scan, against sess ->> (which fails on a \\u0000 anywhere)'
\timing on
SELECT count(*) FROM :"schema".user_sessions WHERE sess ->> 'user_id' = '12345';
SELECT count(*) FROM :"schema".user_sessions WHERE :"schema".pgstore_sess_text(sess, 'user_id') = '12345';
\timing off

\echo '== Revoke without an index on the key'
BEGIN;
SET LOCAL plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE revoke('12345', '');
ROLLBACK;

CREATE INDEX user_sessions_user_id_idx ON :"schema".user_sessions (:"schema".pgstore_sess_text(sess, 'user_id'));
ANALYZE :"schema".user_sessions;
\echo '== Revoke with the expression index, custom and generic'
BEGIN;
SET LOCAL plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE revoke('12345', '');
ROLLBACK;
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE revoke('12345', '');
ROLLBACK;

-- A partial index leaves out sessions without the key (anonymous visitors).
DROP INDEX :"schema".user_sessions_user_id_idx;
CREATE INDEX user_sessions_user_id_partial ON :"schema".user_sessions (:"schema".pgstore_sess_text(sess, 'user_id'))
  WHERE :"schema".pgstore_sess_text(sess, 'user_id') IS NOT NULL;
ANALYZE :"schema".user_sessions;
\echo '== Revoke with a partial expression index (WHERE ... IS NOT NULL), generic'
BEGIN;
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE revoke('12345', '');
ROLLBACK;

DEALLOCATE ALL;
RESET plan_cache_mode;
DROP SCHEMA :"schema" CASCADE;
