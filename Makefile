# PGXS build of the extension. The pure C++ core is also built and unit
# tested on its own by CMake (see CMakeLists.txt).
EXTENSION = aggr_ext
MODULE_big = aggr_ext
DATA = aggr_ext--1.0.sql aggr_ext--1.1.sql aggr_ext--1.0--1.1.sql
PGFILEDESC = "aggr_ext - aggregate indexes"

CORE_SRCS = src/core/node_codec.cpp src/core/tree.cpp src/core/pending.cpp
PG_SRCS = src/pg/guard.cpp src/pg/keys.cpp src/pg/storage.cpp src/pg/catalog.cpp src/pg/maintenance.cpp src/pg/spill.cpp src/pg/sorted_scan.cpp src/pg/deltas.cpp src/pg/workers.cpp src/pg/owner_context.cpp \
          src/pg/citus.cpp src/pg/triggers.cpp src/pg/functions.cpp src/pg/verify.cpp src/pg/jobs.cpp src/pg/ddl.cpp src/pg/definition.cpp src/pg/params.cpp src/pg/planner.cpp src/pg/module.cpp
OBJS = $(CORE_SRCS:.cpp=.o) $(PG_SRCS:.cpp=.o)

REGRESS = setup corruption api errors maintenance keys bounds params backfill fuzz_api ddl deferred job_differential snapshots drop_table security_background security security_review progress job_workers convex_api convex_review bulk_load bulk_load_txn planner planner_fuzz partitions node_storage build_sort build_sort_keys job_step_abort upgrade
REGRESS_OPTS = --load-extension=plpgsql
ISOLATION = concurrency backfill_live caches deferred_writers job_races reader_snapshots security_lock keyset_pages truncate_swap rr_own_writes cursor_snapshots drop_during_job bulk_load_concurrent rc_read_waits_for_writer planner_snapshots planner_writers partition_writers node_tids whole_build_races
ISOLATION_OPTS = --outputdir=output_iso

# The suites' oracles are plain SQL (count(*) ... WHERE ...), which the
# planner would answer from the very aggregate under test: they run with it
# off. sql/planner.sql and specs/planner_snapshots.spec turn it on.
export PGOPTIONS := $(PGOPTIONS) -c aggr_ext.enable_planner=off

PG_CONFIG ?= pg_config
PG_CXXFLAGS = -MMD -MP -std=c++17 -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register -fno-omit-frame-pointer
SHLIB_LINK = -lstdc++

# No LLVM bitcode for C++ sources (the JIT inliner would need clang++ flags too).
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS compiles C++ with CXXFLAGS; keep PostgreSQL's C-only flags out.
override CXXFLAGS := $(filter-out -Wmissing-prototypes -Wdeclaration-after-statement,$(CXXFLAGS))

# Rebuild objects when a header they include changes.
-include $(OBJS:.o=.d)
EXTRA_CLEAN = $(OBJS:.o=.d)
