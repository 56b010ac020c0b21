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
-- The rows are laid out around today's midnight (UTC), d0: live sessions
-- expire 15 to 45 days after it, 20,000 expired in the 11 days before it,
-- and the statements compare with the database's now(), as the store's do.
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
SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AS d0 \gset
SELECT extract(epoch FROM :'d0'::timestamp AT TIME ZONE 'UTC')::bigint AS nowepoch \gset
SELECT :nowepoch + 2592000 AS expepoch \gset

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
FROM generate_series(:'d0'::timestamp - interval '11 days', :'d0'::timestamp + interval '50 days', interval '1 day') d \gexec
CREATE INDEX ON by_expire ("expire");

-- 300,000 sessions with a 30-day MaxAge that expire d0 + 15 .. 45 days, and
-- 20,000 that expired d0 - 11 days .. d0.
INSERT INTO by_sid
SELECT translate(rtrim(encode(sha256(convert_to('p' || g, 'UTF8')), 'base64'), '='), '+/', '-_'),
       ('{"_pgstore":{"created":1764201600},"csrf":"' || md5(g::text) ||
        '","user":"alice@example.com","user_id":' || (10000 + g % 90000) || '}')::json,
       (:'d0'::timestamp + interval '15 days') + g * interval '8.64 seconds'
FROM generate_series(1, 300000) g
UNION ALL
SELECT translate(rtrim(encode(sha256(convert_to('x' || g, 'UTF8')), 'base64'), '='), '+/', '-_'),
       '{"_pgstore":{"created":1761609600},"user_id":1}'::json,
       (:'d0'::timestamp - interval '11 days') + (g - 1) * interval '47.52 seconds'
FROM generate_series(1, 20000) g;
INSERT INTO by_expire SELECT * FROM by_sid;
VACUUM ANALYZE by_sid, by_expire;

\echo 'New accepts both (relkind p) and finds their expire index (schema.go tableExists, checkExpireIndex):'
SELECT t AS "table", (SELECT relkind::text FROM pg_class WHERE oid = to_regclass(t)) AS relkind,
       (SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
          WHERE i.indrelid = to_regclass(t) AND a.attname = 'expire')) AS expire_index
FROM unnest(ARRAY['by_sid', 'by_expire']) t;

SELECT translate(rtrim(encode(sha256(convert_to('p150000', 'UTF8')), 'base64'), '='), '+/', '-_') AS live \gset
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
SELECT count(*) AS expired_rows FROM by_expire WHERE expire < (now() AT TIME ZONE 'UTC');
SELECT format('ALTER TABLE by_expire DETACH PARTITION %I', c.relname) || '; ' || format('DROP TABLE %I', c.relname)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'by_expire'::regclass
  AND (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamp
      <= (now() AT TIME ZONE 'UTC')
ORDER BY c.relname \gexec
SELECT count(*) AS expired_rows_left, (SELECT count(*) FROM pg_inherits WHERE inhparent = 'by_expire'::regclass) AS partitions
FROM by_expire WHERE expire < (now() AT TIME ZONE 'UTC');

RESET search_path;
DROP SCHEMA :"schema" CASCADE;
