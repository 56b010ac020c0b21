-- Which of pgstore's updates are HOT (heap-only tuple) updates, measured
-- with pg_stat_user_tables.n_tup_hot_upd.
--
--   psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U root -d test -f docs/ops/hot.sql
--
-- Three copies of schema.sql's table with 10,000 sessions each:
--   ff100         fillfactor 100 (PostgreSQL's default)
--   ff90          fillfactor 90
--   ff90_user_id  fillfactor 90 and the expression index for Revoke
-- Each gets 30,000 values-only updates (what Save sends within
-- TouchInterval: SET sess) and then 10,000 touches (SET sess, expire), one
-- transaction per statement, as requests do, with the store's statements
-- (which compare expire with the database's now()).
--
-- It works in a schema of its own, pgstore_ops_hot_ and a random suffix (or
-- -v schema=NAME, which must not exist yet), so runs on a shared server do
-- not collide, and drops it at the end. If a run stops on an error, the
-- schema it printed at the start is left behind: drop it by hand. Runs at the
-- same time share the server, so their HOT shares are noisier.

\if :{?schema}
\else
  SELECT 'pgstore_ops_hot_' || substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()), 1, 8) AS schema \gset
\endif
\echo 'working in schema' :"schema"
SET client_min_messages = warning;
CREATE SCHEMA :"schema";
SET search_path = :"schema";
-- The function Revoke reads sess through, from schema.sql (whose table
-- comes along, unused here).
\ir ../../schema.sql

CREATE TABLE ff100 ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"));
CREATE INDEX ON ff100 ("expire");
CREATE TABLE ff90 (LIKE ff100 INCLUDING ALL) WITH (fillfactor = 90);
CREATE TABLE ff90_user_id (LIKE ff100 INCLUDING ALL) WITH (fillfactor = 90);
CREATE INDEX ON ff90_user_id (pgstore_sess_text(sess, 'user_id'));

CREATE FUNCTION sess(g int, round int) RETURNS json IMMUTABLE LANGUAGE sql AS $$
  SELECT ('{"_pgstore":{"created":1764201600},"csrf":"' || md5(g || '/' || round) ||
          '","user":"alice@example.com","user_id":' || (10000 + g) || '}')::json $$;
CREATE FUNCTION sid(g int) RETURNS text IMMUTABLE LANGUAGE sql AS
  $$ SELECT translate(rtrim(encode(sha256(convert_to('hot' || g, 'UTF8')), 'base64'), '='), '+/', '-_') $$;

INSERT INTO ff100 SELECT sid(g), sess(g, 0), (now() AT TIME ZONE 'UTC') + interval '30 days' FROM generate_series(1, 10000) g;
INSERT INTO ff90 SELECT * FROM ff100;
INSERT INTO ff90_user_id SELECT * FROM ff100;
VACUUM ANALYZE ff100, ff90, ff90_user_id;

CREATE TABLE results (tbl text, phase text, upd bigint, hot_upd bigint);
CREATE FUNCTION snap(phase text) RETURNS void LANGUAGE sql AS $$
  INSERT INTO results SELECT relname, phase, n_tup_upd, n_tup_hot_upd
  FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname LIKE 'ff%' $$;

SELECT pg_stat_force_next_flush() \gset
SELECT snap('start') \gset

-- Values-only updates: Save of a changed session within TouchInterval.
DO $$
DECLARE t text; r int; g int;
BEGIN
  FOREACH t IN ARRAY ARRAY['ff100', 'ff90', 'ff90_user_id'] LOOP
    FOR r IN 1..3 LOOP
      FOR g IN 1..10000 LOOP
        EXECUTE format('UPDATE %I SET sess = $2 WHERE sid = $1 AND expire >= (now() AT TIME ZONE ''UTC'')', t)
          USING sid(g), sess(g, r);
        COMMIT;
      END LOOP;
    END LOOP;
  END LOOP;
END $$;
SELECT pg_stat_force_next_flush() \gset
SELECT snap('values-only') \gset

-- Touches: Save once the stored expire lags by TouchInterval moves expire.
DO $$
DECLARE t text; g int;
BEGIN
  FOREACH t IN ARRAY ARRAY['ff100', 'ff90', 'ff90_user_id'] LOOP
    FOR g IN 1..10000 LOOP
      EXECUTE format('UPDATE %I SET sess = $2, expire = (to_timestamp($3) AT TIME ZONE ''UTC'') WHERE sid = $1 AND expire >= (now() AT TIME ZONE ''UTC'')', t)
        USING sid(g), sess(g, 4), extract(epoch FROM now()) + 2592000 + 3600;
      COMMIT;
    END LOOP;
  END LOOP;
END $$;
SELECT pg_stat_force_next_flush() \gset
SELECT snap('touch') \gset

\echo 'Updates and HOT updates per phase:'
SELECT cur.tbl AS "table", cur.phase,
       cur.upd - prev.upd AS updates,
       cur.hot_upd - prev.hot_upd AS hot_updates,
       round(100.0 * (cur.hot_upd - prev.hot_upd) / nullif(cur.upd - prev.upd, 0), 1) AS hot_pct
FROM results cur
JOIN results prev ON prev.tbl = cur.tbl
  AND prev.phase = CASE cur.phase WHEN 'values-only' THEN 'start' WHEN 'touch' THEN 'values-only' END
ORDER BY cur.phase DESC, cur.tbl;

\echo 'Sizes afterwards (10,000 live rows each):'
SELECT c.relname AS "table", pg_size_pretty(pg_table_size(c.oid)) AS heap,
       pg_size_pretty(pg_indexes_size(c.oid)) AS indexes
FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = :'schema') AND c.relname LIKE 'ff%' AND c.relkind = 'r'
ORDER BY 1;

RESET search_path;
DROP SCHEMA :"schema" CASCADE;
