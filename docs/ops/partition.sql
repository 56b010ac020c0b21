-- pgstore's statements against partitioned tables, run by hand.
--
--   psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -U root -d test -f docs/ops/partition.sql
--
-- Two layouts in a scratch schema, each with 300,000 sessions whose expire
-- spreads over 30 days:
--   by_sid     PARTITION BY HASH (sid), 8 partitions, PRIMARY KEY (sid)
--   by_expire  PARTITION BY RANGE (expire), a partition a day,
--              PRIMARY KEY (sid, expire)
-- Each statement of pgstore.go, prune.go and revoke.go is prepared with the
-- store's text and run; the plans show how many partitions each touches.
-- "now" is 2025-12-12 00:00 UTC (epoch 1765497600). The statements are
-- written as the store sent them when docs/operations.md was measured (it
-- then bound its own clock; it now compares with the database's now()).
--
-- It works in a schema of its own, pgstore_ops_part_ and a random suffix (or
-- -v schema=NAME, which must not exist yet), so runs on a shared server do
-- not collide, and drops it at the end. If a run stops on an error, the
-- schema it printed at the start is left behind: drop it by hand.

\if :{?schema}
\else
  SELECT 'pgstore_ops_part_' || substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()), 1, 8) AS schema \gset
\endif
\echo 'working in schema' :"schema"
SET client_min_messages = warning;
CREATE SCHEMA :"schema";
SET search_path = :"schema";
-- The function Revoke reads sess through, from schema.sql (whose table
-- comes along, unused here).
\ir ../../schema.sql

CREATE TABLE by_sid ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid")) PARTITION BY HASH ("sid");
SELECT format('CREATE TABLE by_sid_%s PARTITION OF by_sid FOR VALUES WITH (MODULUS 8, REMAINDER %s)', r, r)
FROM generate_series(0, 7) r \gexec
CREATE INDEX ON by_sid ("expire");

\echo 'A primary key on sid alone is refused when the partition key is expire:'
\set ON_ERROR_STOP 0
CREATE TABLE refused ("sid" varchar NOT NULL, "sess" json NOT NULL, "expire" timestamp(6) NOT NULL,
  PRIMARY KEY ("sid")) PARTITION BY RANGE ("expire");
\set ON_ERROR_STOP 1

CREATE TABLE by_expire ("sid" varchar NOT NULL COLLATE "default", "sess" json NOT NULL,
  "expire" timestamp(6) NOT NULL, PRIMARY KEY ("sid", "expire")) PARTITION BY RANGE ("expire");
SELECT format('CREATE TABLE by_expire_%s PARTITION OF by_expire FOR VALUES FROM (%L) TO (%L)',
              to_char(d, 'YYYYMMDD'), d, d + interval '1 day')
FROM generate_series(timestamp '2025-12-01', timestamp '2026-01-31', interval '1 day') d \gexec
CREATE INDEX ON by_expire ("expire");

-- 300,000 sessions created 2025-11-27 .. 2025-12-27, 30-day MaxAge: expire
-- 2025-12-27 .. 2026-01-26. Plus 20,000 that expired 2025-12-01 .. 2025-12-11.
INSERT INTO by_sid
SELECT translate(rtrim(encode(sha256(convert_to('p' || g, 'UTF8')), 'base64'), '='), '+/', '-_'),
       ('{"_pgstore":{"created":1764201600},"csrf":"' || md5(g::text) ||
        '","user":"alice@example.com","user_id":' || (10000 + g % 90000) || '}')::json,
       timestamp '2025-12-27' + g * interval '8.64 seconds'
FROM generate_series(1, 300000) g
UNION ALL
SELECT translate(rtrim(encode(sha256(convert_to('x' || g, 'UTF8')), 'base64'), '='), '+/', '-_'),
       '{"_pgstore":{"created":1761609600},"user_id":1}'::json,
       timestamp '2025-12-01' + g * interval '47.52 seconds'
FROM generate_series(1, 20000) g;
INSERT INTO by_expire SELECT * FROM by_sid;
VACUUM ANALYZE by_sid, by_expire;

\echo 'New accepts both (relkind p) and finds their expire index (schema.go tableExists, checkExpireIndex):'
SELECT t AS "table", (SELECT relkind::text FROM pg_class WHERE oid = to_regclass(t)) AS relkind,
       (SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
          WHERE i.indrelid = to_regclass(t) AND a.attname = 'expire')) AS expire_index
FROM unnest(ARRAY['by_sid', 'by_expire']) t;

SELECT translate(rtrim(encode(sha256(convert_to('p150000', 'UTF8')), 'base64'), '='), '+/', '-_') AS live \gset
\set nowepoch 1765497600
\set expepoch 1768089600
\set newsess '{"_pgstore":{"created":1765497600},"user_id":12345,"n":2}'

\echo
\echo '######## by_sid: hash partitions on sid'
\set tbl by_sid
\ir partition_statements.sql
\echo
\echo '######## by_expire: range partitions on expire'
\set tbl by_expire
\ir partition_statements.sql

\echo
\echo '== by_expire: a touch that moves expire into another partition moves the row'
BEGIN;
SELECT tableoid::regclass AS before FROM by_expire WHERE sid = :'live';
UPDATE by_expire SET expire = expire + interval '5 days' WHERE sid = :'live';
SELECT tableoid::regclass AS after FROM by_expire WHERE sid = :'live';
ROLLBACK;

\echo '== by_expire: dropping the partitions that ended before now replaces the DELETE'
SELECT count(*) AS expired_rows FROM by_expire WHERE expire < to_timestamp(:nowepoch) AT TIME ZONE 'UTC';
SELECT format('ALTER TABLE by_expire DETACH PARTITION %I', c.relname) || '; ' || format('DROP TABLE %I', c.relname)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'by_expire'::regclass
  AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamp
      <= to_timestamp(:nowepoch) AT TIME ZONE 'UTC'
ORDER BY c.relname \gexec
SELECT count(*) AS expired_rows_left, (SELECT count(*) FROM pg_inherits WHERE inhparent = 'by_expire'::regclass) AS partitions
FROM by_expire WHERE expire < to_timestamp(:nowepoch) AT TIME ZONE 'UTC';

RESET search_path;
DROP SCHEMA :"schema" CASCADE;
