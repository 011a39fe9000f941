\echo Use "ALTER EXTENSION aggr_ext UPDATE TO '1.1'" to load this file. \quit

-- aggr_ext 1.0 -> 1.1. The internal tables keep their shape (jobs.log_done
-- now holds the job's log floor: an in-flight 1.0 job's "last replayed
-- sequence" means the same to it). What changes:
--  * aggr_job_status gains OUT background (aggr_wait no longer reads
--    aggr_internal, which a non-superuser owner cannot);
--  * aggr_wait / aggr_backfill / aggr_rebuild call only schema-qualified
--    objects; aggr_wait(NULL) is an error;
--  * aggr_page / aggr_page_rows take an int8 limit (drivers' 64-bit integers);
--  * aggr_at / aggr_page / aggr_page_rows take bounds and descending => (one
--    function each, so every 1.0 call form still resolves);
--  * new: aggr_position, aggr_position_of, aggr_random, aggr_paginate,
--    aggr_paginate_rows;
--  * aggr_aggregates shows each role the aggregates it may read;
--  * the aggr_progress view shows running backfills and rebuilds;
--  * DROP TABLE / DROP SCHEMA / DROP OWNED remove the dropped tables'
--    aggregates (sql_drop event trigger);
--  * aggregates on partitioned tables: aggr_internal.aggregates gains the
--    column parent (a leaf partition's part names its partitioned table's
--    aggregate), and event triggers follow partition DDL.
-- Functions whose signature changes are dropped and re-created: a view of
-- yours that calls aggr_at, aggr_page, aggr_page_rows or aggr_job_status must be dropped before the
-- update and re-created after it (the update fails with a clear dependency
-- error otherwise, changing nothing).

DROP FUNCTION aggr_job_status(text);
CREATE FUNCTION aggr_job_status(name text,
    OUT phase text, OUT cancelled bool, OUT error text, OUT rows_done int8, OUT rows_total int8, OUT progress text,
    OUT background bool)
    RETURNS record AS 'MODULE_PATHNAME' LANGUAGE C STRICT;

-- These procedures COMMIT, so they cannot carry SET search_path: every
-- function, type and operator they use is schema-qualified instead, so that
-- nothing found on the caller's search_path (a function planted in a
-- writable public schema) ever runs as the caller.
CREATE OR REPLACE PROCEDURE aggr_wait(name text)
LANGUAGE plpgsql AS $$
DECLARE
    j record;
    t0 pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    last_notice pg_catalog.timestamptz := pg_catalog.clock_timestamp();
    done0 pg_catalog.int8;
    rate pg_catalog.numeric;
BEGIN
    IF name IS NULL THEN
        RAISE EXCEPTION 'aggregate name must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO j FROM @extschema@.aggr_job_status(name);
    done0 := COALESCE(j.rows_done, 0);
    LOOP
        SELECT * INTO j FROM @extschema@.aggr_job_status(name);
        EXIT WHEN j.phase IS NULL;
        IF j.error IS NOT NULL THEN
            RAISE EXCEPTION 'job of aggregate % failed: %', name, j.error;
        END IF;
        IF j.cancelled THEN
            RAISE EXCEPTION 'job of aggregate % was cancelled (%)', name, j.progress;
        END IF;
        IF j.background THEN
            PERFORM pg_catalog.pg_sleep(0.05);
        ELSE
            PERFORM @extschema@.aggr_job_step(name);
        END IF;
        COMMIT;
        IF pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) last_notice
               OPERATOR(pg_catalog.>) '2 seconds'::pg_catalog.interval THEN
            rate := pg_catalog.round((j.rows_done OPERATOR(pg_catalog.-) done0)::pg_catalog.numeric OPERATOR(pg_catalog./)
                        GREATEST(EXTRACT(epoch FROM pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) t0),
                                 0.001::pg_catalog.numeric));
            RAISE NOTICE 'aggregate %: % — % rows/s, ETA % s', name, j.progress, rate,
                CASE WHEN j.phase OPERATOR(pg_catalog.=) 'scan'::pg_catalog.text AND rate OPERATOR(pg_catalog.>) 0::pg_catalog.numeric
                     THEN pg_catalog.round((j.rows_total OPERATOR(pg_catalog.-) j.rows_done)::pg_catalog.numeric
                                           OPERATOR(pg_catalog./) rate) END;
            last_notice := pg_catalog.clock_timestamp();
        END IF;
    END LOOP;
    RAISE NOTICE 'aggregate %: ready', name;
END $$;

CREATE OR REPLACE PROCEDURE aggr_backfill(name text, batch_size int4 DEFAULT 50000, wait bool DEFAULT false,
                               background bool DEFAULT true)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM @extschema@.aggr_job_start(name, 'backfill'::pg_catalog.text, batch_size, background);
    IF wait THEN
        COMMIT;
        CALL @extschema@.aggr_wait(name);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION aggr_rebuild(name text, batch_size int4 DEFAULT 50000, background bool DEFAULT true)
    RETURNS void LANGUAGE sql SET search_path = pg_catalog, pg_temp
    AS $$ SELECT @extschema@.aggr_job_start(name, 'rebuild'::pg_catalog.text, batch_size, background) $$;

DROP FUNCTION aggr_at(text, int8, "any");
CREATE FUNCTION aggr_at(name text, "offset" int8, namespace "any" DEFAULT NULL,
                        lower "any" DEFAULT NULL, upper "any" DEFAULT NULL,
                        lower_inclusive bool DEFAULT true, upper_inclusive bool DEFAULT true,
                        descending bool DEFAULT false,
                        OUT "position" int8, OUT id text, OUT key text, OUT sum_value numeric)
    RETURNS SETOF record AS 'MODULE_PATHNAME' LANGUAGE C STABLE ROWS 1;
DROP FUNCTION aggr_page(text, int8, int4, "any");
CREATE FUNCTION aggr_page(name text, "offset" int8, "limit" int8, namespace "any" DEFAULT NULL,
                          lower "any" DEFAULT NULL, upper "any" DEFAULT NULL,
                          lower_inclusive bool DEFAULT true, upper_inclusive bool DEFAULT true,
                          descending bool DEFAULT false,
                          OUT "position" int8, OUT id text, OUT key text, OUT sum_value numeric)
    RETURNS SETOF record AS 'MODULE_PATHNAME' LANGUAGE C STABLE ROWS 20;
DROP FUNCTION aggr_page_rows(text, int8, int4, anyelement, "any");
CREATE FUNCTION aggr_page_rows(name text, "offset" int8, "limit" int8, row_type anyelement,
                               namespace "any" DEFAULT NULL,
                               lower "any" DEFAULT NULL, upper "any" DEFAULT NULL,
                               lower_inclusive bool DEFAULT true, upper_inclusive bool DEFAULT true,
                               descending bool DEFAULT false)
    RETURNS SETOF anyelement AS 'MODULE_PATHNAME' LANGUAGE C STABLE ROWS 20;

-- Positions, random entries and keyset pages (the Convex TableAggregate
-- calls indexOf, random and paginate). Positions are 0-based, in aggregate
-- order (key, then primary key) within a namespace.
CREATE FUNCTION aggr_position(name text, id "any")
    RETURNS int8 AS 'MODULE_PATHNAME' LANGUAGE C STABLE;
CREATE FUNCTION aggr_position_of(name text, key "any", id "any", namespace "any" DEFAULT NULL)
    RETURNS int8 AS 'MODULE_PATHNAME' LANGUAGE C STABLE;
-- Uses SQL's random(): setseed() makes the draws repeatable.
CREATE FUNCTION aggr_random(name text, namespace "any" DEFAULT NULL,
                            lower "any" DEFAULT NULL, upper "any" DEFAULT NULL,
                            lower_inclusive bool DEFAULT true, upper_inclusive bool DEFAULT true,
                            OUT "position" int8, OUT id text, OUT key text, OUT sum_value numeric)
    RETURNS SETOF record AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE ROWS 1;
CREATE FUNCTION aggr_paginate(name text, namespace "any" DEFAULT NULL,
                              lower "any" DEFAULT NULL, upper "any" DEFAULT NULL,
                              lower_inclusive bool DEFAULT true, upper_inclusive bool DEFAULT true,
                              after_key "any" DEFAULT NULL, after_id "any" DEFAULT NULL,
                              page_size int8 DEFAULT 100, descending bool DEFAULT false,
                              OUT "position" int8, OUT id text, OUT key text, OUT sum_value numeric,
                              OUT is_last bool)
    RETURNS SETOF record AS 'MODULE_PATHNAME' LANGUAGE C STABLE ROWS 100;
CREATE FUNCTION aggr_paginate_rows(name text, row_type anyelement, namespace "any" DEFAULT NULL,
                                   lower "any" DEFAULT NULL, upper "any" DEFAULT NULL,
                                   lower_inclusive bool DEFAULT true, upper_inclusive bool DEFAULT true,
                                   after_key "any" DEFAULT NULL, after_id "any" DEFAULT NULL,
                                   page_size int8 DEFAULT 100, descending bool DEFAULT false)
    RETURNS SETOF anyelement AS 'MODULE_PATHNAME' LANGUAGE C STABLE ROWS 100;

-- The aggregates of this database that the current role may see: those on
-- tables it may SELECT or whose owner it is (a member of), and, for
-- superusers, those whose table is gone. The view reads aggr_internal with
-- its owner's rights; the filter uses the caller's, and runs before any
-- condition of the caller's query (security_barrier: a leaky function in
-- that query would otherwise see every row).
CREATE OR REPLACE VIEW aggr_aggregates WITH (security_barrier) AS
    SELECT a.name, a.source, a.state, a.key_spec AS key,
           a.sum_spec AS sum_value, a.ns_spec AS namespace, a.created, a.write_mode
      FROM aggr_internal.aggregates a
      LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.source::pg_catalog.oid
     WHERE CASE WHEN c.oid IS NULL
                THEN (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
                ELSE pg_catalog.has_table_privilege(c.oid, 'SELECT') OR pg_catalog.pg_has_role(c.relowner, 'USAGE')
           END;
GRANT SELECT ON aggr_aggregates TO PUBLIC;

-- Running backfills and rebuilds, one row per job, like
-- pg_stat_progress_create_index: rows_total is the planner's estimate (never
-- below rows_done) until the scan ends; pid is the background worker running
-- the job now (NULL for a job driven by aggr_job_step, or between workers),
-- found by the session lock a live worker holds (pg_locks shows it to every
-- role; pg_stat_activity hides other roles' workers). Rows are filtered per
-- role exactly as in aggr_aggregates.
CREATE VIEW aggr_progress WITH (security_barrier) AS
    SELECT a.name, a.source, j.kind, j.phase, j.rows_done,
           GREATEST(j.rows_total, j.rows_done) AS rows_total,
           CASE WHEN j.phase OPERATOR(pg_catalog.=) 'scan'::pg_catalog.text
                THEN pg_catalog.round(100::pg_catalog.numeric OPERATOR(pg_catalog.*) j.rows_done::pg_catalog.numeric
                                      OPERATOR(pg_catalog./) GREATEST(j.rows_total, j.rows_done, 1)::pg_catalog.numeric, 1)
                ELSE 100::pg_catalog.numeric
           END AS scan_percent,
           j.batch_size, j.background, j.cancelled, j.error, j.started, j.updated,
           (SELECT l.pid FROM pg_catalog.pg_locks l
             WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory'::pg_catalog.text
               AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                                      WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
               AND l.classid OPERATOR(pg_catalog.=) j.aggr_id::pg_catalog.oid
               AND l.objid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
               AND l.objsubid OPERATOR(pg_catalog.=) (-22940)::pg_catalog.int2  -- 0xA664 as int2: a live job worker's lock (jobs.cpp)
               AND l.mode OPERATOR(pg_catalog.=) 'ExclusiveLock'::pg_catalog.text AND l.granted
             LIMIT 1) AS pid
      FROM aggr_internal.jobs j
      JOIN aggr_internal.aggregates a ON a.aggr_id OPERATOR(pg_catalog.=) j.aggr_id
      LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.source::pg_catalog.oid
     WHERE CASE WHEN c.oid IS NULL
                THEN (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
                ELSE pg_catalog.has_table_privilege(c.oid, 'SELECT') OR pg_catalog.pg_has_role(c.relowner, 'USAGE')
           END;
GRANT SELECT ON aggr_progress TO PUBLIC;

-- DROP TABLE (and DROP SCHEMA ... CASCADE, DROP OWNED) removes the table's
-- aggregates, as it removes its indexes. ALWAYS: also under
-- session_replication_role = replica (restores, logical replication).
CREATE FUNCTION aggr_ext_sql_drop() RETURNS event_trigger
    AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE EVENT TRIGGER aggr_ext_sql_drop ON sql_drop EXECUTE FUNCTION aggr_ext_sql_drop();
ALTER EVENT TRIGGER aggr_ext_sql_drop ENABLE ALWAYS;

-- Node rows leave half of each page for their next versions (HOT updates
-- that log only the changed bytes); pages written from now on.
ALTER TABLE aggr_internal.nodes SET (fillfactor = 50);

ALTER TABLE aggr_internal.aggregates ADD COLUMN parent int4;

-- Partition DDL keeps the aggregates of partitioned tables whole: CREATE
-- TABLE ... PARTITION OF and ATTACH PARTITION give the new leaf partitions
-- their part (built in the same transaction), DETACH PARTITION removes the
-- detached table's part; DETACH PARTITION ... CONCURRENTLY is refused.
CREATE FUNCTION aggr_ext_partition_ddl() RETURNS event_trigger
    AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE EVENT TRIGGER aggr_ext_partition_ddl_start ON ddl_command_start
    WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION aggr_ext_partition_ddl();
CREATE EVENT TRIGGER aggr_ext_partition_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER TABLE') EXECUTE FUNCTION aggr_ext_partition_ddl();
ALTER EVENT TRIGGER aggr_ext_partition_ddl_start ENABLE ALWAYS;
ALTER EVENT TRIGGER aggr_ext_partition_ddl ENABLE ALWAYS;
