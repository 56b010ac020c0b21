-- Queries to watch pgstore's table. Read-only; safe on a production server.
--
--   psql -X -h HOST -U USER -d DB -f docs/ops/monitor.sql \
--        -v schema=public -v table=user_sessions -v store_schema= -v zone=UTC
--
-- schema, table: where the table is. store_schema: Config.SchemaName exactly
-- as the application sets it (empty when unset); the prune lock key is
-- derived from it, not from the schema the table resolves to. zone:
-- Config.TimeZone (the zone expire is written in).

\if :{?schema}
\else
  \set schema public
\endif
\if :{?table}
\else
  \set table user_sessions
\endif
\if :{?store_schema}
\else
  \set store_schema ''
\endif
\if :{?zone}
\else
  \set zone UTC
\endif
SELECT format('%I.%I', :'schema', :'table') AS qualified,
       CASE WHEN :'store_schema' = '' THEN '' ELSE '"' || replace(:'store_schema', '"', '""') || '".' END ||
         '"' || replace(:'table', '"', '""') || '"' AS store_name \gset

\echo '== 1. Sessions, and expired rows the pruner has not removed yet'
-- live_rows is the statistics collector's running estimate; count(*) of the
-- whole table would read all of it. The expired count uses the expire index.
SELECT (SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = :'qualified'::regclass) AS live_rows,
       count(*) AS expired_not_pruned,
       min(expire) AS oldest_expire,
       date_trunc('second', (now() AT TIME ZONE :'zone') - min(expire)) AS prune_lag
FROM :"schema".:"table"
WHERE expire < now() AT TIME ZONE :'zone';

\echo '== 2. Activity and vacuum (pg_stat_user_tables)'
SELECT n_live_tup, n_dead_tup,
       round(100.0 * n_dead_tup / nullif(n_live_tup + n_dead_tup, 0), 1) AS dead_pct,
       n_tup_ins, n_tup_upd, n_tup_hot_upd,
       round(100.0 * n_tup_hot_upd / nullif(n_tup_upd, 0), 1) AS hot_pct,
       n_tup_del, last_autovacuum, last_vacuum, autovacuum_count, last_autoanalyze
FROM pg_stat_user_tables WHERE relid = :'qualified'::regclass;

\echo '== 3. Sizes and index use'
SELECT pg_size_pretty(pg_table_size(c.oid)) AS heap,
       pg_size_pretty(pg_indexes_size(c.oid)) AS indexes,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS total,
       round(pg_table_size(c.oid)::numeric / nullif(s.n_live_tup, 0)) AS heap_bytes_per_live_row,
       c.reloptions
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = :'qualified'::regclass;
SELECT indexrelname AS index, idx_scan, pg_size_pretty(pg_relation_size(indexrelid)) AS size
FROM pg_stat_user_indexes WHERE relid = :'qualified'::regclass ORDER BY indexrelname;

\echo '== 4. Bloat (exact with pgstattuple; otherwise compare heap_bytes_per_live_row above with docs/benchmarks.md)'
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgstattuple') AS has_pgstattuple \gset
\if :has_pgstattuple
SELECT round(approx_free_percent::numeric, 1) AS free_pct, round(dead_tuple_percent::numeric, 1) AS dead_pct,
       pg_size_pretty(approx_free_space) AS free_space
FROM pgstattuple_approx(:'qualified'::regclass);
SELECT i.indexrelid::regclass AS index, s.avg_leaf_density, s.leaf_fragmentation
FROM pg_index i, LATERAL pgstatindex(i.indexrelid::regclass) s
WHERE i.indrelid = :'qualified'::regclass;
\else
\echo '(pgstattuple is not installed)'
\endif

\echo '== 5. The store''s statements (pg_stat_statements)'
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS has_pgss \gset
\if :has_pgss
SELECT calls, round(mean_exec_time::numeric, 3) AS mean_ms, round(max_exec_time::numeric, 1) AS max_ms,
       rows, left(regexp_replace(query, '\s+', ' ', 'g'), 70) AS query
FROM pg_stat_statements
WHERE strpos(query, :'store_name') > 0 AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC LIMIT 12;
\else
\echo '(pg_stat_statements is not installed)'
\endif

\echo '== 6. Who holds the prune lock (held only while one prune batch runs)'
SELECT ('x' || encode(substring(sha256(
         convert_to('pgstore', 'UTF8') || '\x00'::bytea || convert_to('prune', 'UTF8') || '\x00'::bytea ||
         convert_to(:'store_schema', 'UTF8') || '\x00'::bytea || convert_to(:'table', 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)::bigint
       AS prune_key \gset
SELECT :prune_key AS prune_key;
SELECT l.pid, l.granted, a.application_name, a.client_addr, a.state,
       date_trunc('second', now() - a.state_change) AS in_state_for, left(a.query, 60) AS last_query
FROM pg_locks l JOIN pg_stat_activity a USING (pid)
WHERE l.locktype = 'advisory' AND l.objsubid = 1
  AND ((l.classid::bigint << 32) | l.objid::bigint) = :prune_key;

\echo '== 7. Prune statements running now, and sessions waiting on locks'
SELECT pid, date_trunc('milliseconds', now() - query_start) AS running, wait_event_type, wait_event,
       left(query, 60) AS query
FROM pg_stat_activity
WHERE state = 'active' AND query LIKE 'DELETE FROM %FOR UPDATE SKIP LOCKED%'
ORDER BY running DESC;
SELECT pid, pg_blocking_pids(pid) AS blocked_by, date_trunc('milliseconds', now() - query_start) AS waiting,
       left(query, 60) AS query
FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0;

\echo '== 8. Oldest snapshots (they stop vacuum and HOT pruning from removing dead rows)'
SELECT pid, datname, state, age(backend_xmin) AS xmin_age, date_trunc('second', now() - xact_start) AS xact_age,
       left(query, 50) AS query
FROM pg_stat_activity WHERE backend_xmin IS NOT NULL ORDER BY age(backend_xmin) DESC LIMIT 5;
