-- Size of pgstore's table per million sessions, measured.
--
--   psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U root -d test -f docs/ops/size.sql
--
-- Builds three copies of schema.sql's table in a scratch schema, fills each
-- with 1,000,000 rows shaped as pgstore writes them, prints the sizes and
-- drops the schema. Takes a few minutes and about 2 GB of disk while it runs.
-- Set rows with -v rows=N to measure another count.
--
-- It works in a schema of its own, pgstore_ops_size_ and a random suffix (or
-- -v schema=NAME, which must not exist yet), so runs on a shared server do
-- not collide, and drops it at the end. If a run stops on an error, the
-- schema it printed at the start is left behind: drop it by hand.
--
--   small:   native cookie (43-character ID), ~120-byte sess
--   large:   native cookie, ~1 KB sess
--   express: Express mode (32-character ID), the cookie member in sess
--
-- sess is written with its keys in the order pgstore's JSONCodec writes them
-- (the store's "_pgstore" member first, then the values sorted by key).
-- IDs are pseudo-random, so the primary key is built by random inserts as in
-- production; expire rises with insertion order, as it does in production.

\if :{?rows}
\else
  \set rows 1000000
\endif
\timing off
\if :{?schema}
\else
  SELECT 'pgstore_ops_size_' || substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()), 1, 8) AS schema \gset
\endif
\echo 'working in schema' :"schema"
SET client_min_messages = warning;
CREATE SCHEMA :"schema";
SET search_path = :"schema";
-- The function Revoke reads sess through, from schema.sql (whose table
-- comes along, unused here).
\ir ../../schema.sql

CREATE TABLE small ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid"));
CREATE INDEX ON small ("expire");
CREATE TABLE large (LIKE small INCLUDING ALL);
CREATE TABLE express (LIKE small INCLUDING ALL);

-- A 43-character base64url ID (32 bytes), as pgstore makes them.
CREATE FUNCTION sid43(seed text) RETURNS text IMMUTABLE LANGUAGE sql AS
  $$ SELECT translate(rtrim(encode(sha256(convert_to(seed, 'UTF8')), 'base64'), '='), '+/', '-_') $$;
-- A 32-character base64url ID (24 bytes), as express-session makes them.
CREATE FUNCTION sid32(seed text) RETURNS text IMMUTABLE LANGUAGE sql AS
  $$ SELECT translate(encode(substring(sha256(convert_to(seed, 'UTF8')) FROM 1 FOR 24), 'base64'), '+/', '-_') $$;

-- Sessions created over 30 days from 2025-11-27 00:00 UTC, 30-day MaxAge:
-- created = 1764201600 + g * 2.592 s, expire = created + 30 days, to the ms.
INSERT INTO small
SELECT sid43('small' || g),
       ('{"_pgstore":{"created":' || (1764201600 + floor(g * 2.592))::bigint || '},"csrf":"' || md5(g::text) ||
         '","user":"alice@example.com","user_id":' || (10000 + g % 90000) || '}')::json,
       to_timestamp(round((1764201600 + g * 2.592 + 2592000)::numeric, 3)::float8) AT TIME ZONE 'UTC'
FROM generate_series(1, :rows) g;

INSERT INTO large
SELECT sid43('large' || g),
       ('{"_pgstore":{"created":' || (1764201600 + floor(g * 2.592))::bigint || '},"csrf":"' || md5(g::text) ||
         '","recent":"' || substr(repeat(md5(g::text) || md5((g + 1)::text), 15), 1, 915) ||
         '","user":"alice@example.com","user_id":' || (10000 + g % 90000) || '}')::json,
       to_timestamp(round((1764201600 + g * 2.592 + 2592000)::numeric, 3)::float8) AT TIME ZONE 'UTC'
FROM generate_series(1, :rows) g;

INSERT INTO express
SELECT sid32('express' || g),
       ('{"cookie":{"originalMaxAge":2592000000,"expires":"' ||
         to_char(to_timestamp(round((1764201600 + g * 2.592 + 2592000)::numeric, 3)::float8) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') ||
         '","secure":true,"httpOnly":true,"path":"/","sameSite":"lax"},"_pgstore":{"created":' ||
         (1764201600 + floor(g * 2.592))::bigint || '},"csrf":"' || md5(g::text) ||
         '","user":"alice@example.com","user_id":' || (10000 + g % 90000) || '}')::json,
       to_timestamp(round((1764201600 + g * 2.592 + 2592000)::numeric, 3)::float8) AT TIME ZONE 'UTC'
FROM generate_series(1, :rows) g;

-- Visibility and free-space maps exist on any table that has been vacuumed,
-- so the sizes include them.
VACUUM ANALYZE small;
VACUUM ANALYZE large;
VACUUM ANALYZE express;

\echo 'One row of each shape:'
SELECT 'small' AS shape, sid, sess FROM small LIMIT 1;
SELECT 'large' AS shape, sid, left(sess::text, 120) || '...' AS sess FROM large LIMIT 1;
SELECT 'express' AS shape, sid, sess FROM express LIMIT 1;

CREATE TEMP TABLE sizes AS
SELECT c.relname AS shape,
       :rows::bigint AS n,
       pg_table_size(c.oid) AS heap,
       pg_relation_size(pk.indexrelid) AS pkey,
       pg_relation_size(ex.indexrelid) AS expire_idx,
       pg_indexes_size(c.oid) AS indexes,
       pg_total_relation_size(c.oid) AS total
FROM pg_class c
JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
JOIN pg_index ex ON ex.indrelid = c.oid AND NOT ex.indisprimary
WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = :'schema') AND c.relkind = 'r';

\echo 'Average lengths (bytes):'
SELECT 'small' AS shape, round(avg(octet_length(sid))) AS sid, round(avg(octet_length(sess::text))) AS sess,
       round(avg(pg_column_size(t.*))) AS row_datum FROM small t
UNION ALL
SELECT 'large', round(avg(octet_length(sid))), round(avg(octet_length(sess::text))), round(avg(pg_column_size(t.*))) FROM large t
UNION ALL
SELECT 'express', round(avg(octet_length(sid))), round(avg(octet_length(sess::text))), round(avg(pg_column_size(t.*))) FROM express t;

\echo 'Sizes, scaled to one million rows (MB = 2^20 bytes):'
SELECT shape,
       n AS rows,
       round(heap * 1e6 / n / 1048576.0, 1) AS table_mb,
       round(pkey * 1e6 / n / 1048576.0, 1) AS pkey_mb,
       round(expire_idx * 1e6 / n / 1048576.0, 1) AS expire_idx_mb,
       round(indexes * 1e6 / n / 1048576.0, 1) AS indexes_mb,
       round(total * 1e6 / n / 1048576.0, 1) AS total_mb,
       round(total::numeric / n) AS bytes_per_row
FROM sizes ORDER BY total;

-- The expression index Revoke can use (docs/operations.md), built after the
-- load: a fresh build packs pages fuller than incremental inserts do.
CREATE INDEX small_user_id ON small (pgstore_sess_text(sess, 'user_id'));
CREATE INDEX small_pkey_rebuilt ON small (sid);
CREATE INDEX small_expire_rebuilt ON small (expire);
\echo 'Freshly built indexes on the small table, per million rows:'
SELECT relname AS index, round(pg_relation_size(oid) * 1e6 / (SELECT n FROM sizes LIMIT 1) / 1048576.0, 1) AS mb
FROM pg_class WHERE relname IN ('small_user_id', 'small_pkey_rebuilt', 'small_expire_rebuilt')
  AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = :'schema') ORDER BY relname;

RESET search_path;
DROP SCHEMA :"schema" CASCADE;
