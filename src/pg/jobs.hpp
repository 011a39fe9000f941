// Background jobs that fill a new generation of an aggregate's trees while
// writers keep going: backfill (reads refused until done) and rebuild (the
// old generation answers reads until the swap).
//
// A job is a sequence of steps, each its own transaction, driven by a
// background worker or by aggr_job_step() calls:
//   scan     one batch from a held, key-ordered cursor appended to the new
//            generation (rows as of the cursor's snapshot)
//   replay   changes writers logged since the job began, in commit order;
//            when caught up: swap generations under the aggregate lock
//   cleanup  drop the old generation
// Progress lives in aggr_internal.jobs, so a restarted server resumes.
#pragma once
#include <string>

#include "catalog.hpp"

namespace aggr::pg {

struct JobRow {
  bool exists = false;
  ItemPointerData tid{};
  int32 aggr_id = 0;
  std::string kind, phase;
  int32 target = 0, batch_size = 0;
  Oid role = InvalidOid;  // who started the job (informational: steps run as the table owner)
  bool background = true, cancelled = false;
  int64 rows_total = 0, rows_done = 0;
  // Log rows at or below this sequence number were written for an earlier
  // job (a writer that flushed during a cancelled job may commit later).
  int64 log_floor = 0;
  bool has_last = false;
  std::string last_entry;  // 4-byte ns length, ns, entry key
  TimestampTz started = 0, updated = 0;
  std::string error;
};

// Waits for a job step in progress and keeps further steps of aggr_id out
// until this transaction ends. Take it before the aggregate lock (a swap
// step holds this one while it waits for that one).
void lock_job_steps(int32 aggr_id);

// The batch size of aggr_create's background build and the default of
// aggr_backfill and aggr_rebuild (their SQL declarations say 50000 too).
constexpr int32 kDefaultJobBatchRows = 50000;

JobRow load_job(int32 aggr_id);
void start_job(const AggregateDef &def, const std::string &kind, int32 batch_size, bool background);
// Runs one step in the current transaction; false when the job is finished,
// cancelled or failed.
bool job_step(int32 aggr_id);
// job_step as the source table's owner (owner_context.hpp), its held cursor
// materialized before the owner context ends. What aggr_job_step and the
// job worker run.
bool job_step_as_owner(int32 aggr_id);
// Stops a job between steps. A cancelled backfill leaves the aggregate
// incomplete (resume with aggr_backfill); a cancelled rebuild is discarded.
void cancel_job(const AggregateDef &def);
// Removes the job, its log and its trees (for aggr_drop).
void discard_job(const AggregateDef &def);
// Relaunches the worker of a background job whose worker is gone (restart).
void ensure_job_worker(int32 aggr_id);
std::string job_progress_text(const JobRow &job);
extern int job_delay_ms;  // aggr_ext.job_delay
void define_settings();  // from _PG_init: aggr_ext.job_delay, aggr_ext.node_cache_size

// Drops every tree of the aggregate outside generations `keep` and `keep2`.
void drop_generations_except(const AggregateDef &def, int32 keep, int32 keep2);

}  // namespace aggr::pg
