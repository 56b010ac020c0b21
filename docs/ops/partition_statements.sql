-- Included by partition.sql with :tbl set: pgstore's statements, by hand.
DEALLOCATE ALL;
PREPARE load AS SELECT sess, date_part('epoch', expire AT TIME ZONE 'UTC'), date_part('epoch', now()) FROM :"tbl" WHERE sid = $1;
PREPARE ins AS INSERT INTO :"tbl" (sid, sess, expire) VALUES ($1, $2, (to_timestamp($3) AT TIME ZONE 'UTC'));
PREPARE upd AS UPDATE :"tbl" SET sess = $2, expire = (to_timestamp($3) AT TIME ZONE 'UTC') WHERE sid = $1 AND expire >= (now() AT TIME ZONE 'UTC');
PREPARE updvalues AS UPDATE :"tbl" SET sess = $2 WHERE sid = $1 AND expire >= (now() AT TIME ZONE 'UTC');
PREPARE del AS DELETE FROM :"tbl" WHERE sid = $1;
PREPARE regen AS WITH gone AS (DELETE FROM :"tbl" WHERE sid = $1 AND expire >= (now() AT TIME ZONE 'UTC') RETURNING 1) INSERT INTO :"tbl" (sid, sess, expire) SELECT $2, $3, (to_timestamp($4) AT TIME ZONE 'UTC') FROM gone;
PREPARE prune AS DELETE FROM :"tbl" WHERE sid = ANY(ARRAY(SELECT sid FROM :"tbl" WHERE expire < LEAST(to_timestamp($1) AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') ORDER BY expire LIMIT $2 FOR UPDATE SKIP LOCKED));
PREPARE revoke AS DELETE FROM :"tbl" WHERE pgstore_sess_text(sess, 'user_id') = $1 AND sid <> $2;

\set quiet_was :QUIET
\set QUIET off
\echo '-- each statement once (row counts)'
BEGIN;
EXECUTE load(:'live');
EXECUTE ins('brand-new-id', :'newsess', :expepoch);
EXECUTE updvalues(:'live', :'newsess');
EXECUTE upd(:'live', :'newsess', :expepoch);
EXECUTE regen('brand-new-id', 'regenerated-id', :'newsess', :expepoch);
EXECUTE del('regenerated-id');
EXECUTE prune(:nowepoch, 1000);
EXECUTE revoke('12345', '');
ROLLBACK;
\set QUIET :quiet_was

\echo '-- load: custom plan, then generic plan'
SET plan_cache_mode = force_custom_plan;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE load(:'live');
SET plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE load(:'live');
\echo '-- update (touch), generic plan'
BEGIN;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE upd(:'live', :'newsess', :expepoch);
ROLLBACK;
\echo '-- prune batch, custom plan'
SET plan_cache_mode = force_custom_plan;
BEGIN;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE prune(:nowepoch, 1000);
ROLLBACK;
RESET plan_cache_mode;
DEALLOCATE ALL;
