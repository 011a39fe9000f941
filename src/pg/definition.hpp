// Defining and removing aggregates: the checks on the table, the catalog
// row, the maintenance triggers, the first build. An aggregate on a
// partitioned table is a catalog row without trees plus one part per leaf
// partition: an ordinary aggregate on that partition (its own triggers and
// trees) whose catalog row names the partitioned table's aggregate as its
// parent. Reads by the parent's name combine the parts (functions.cpp).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "catalog.hpp"

namespace aggr::pg {

enum class BuildMode { Auto, Now, Background };

// GUC aggr_ext.partition_merge_rows (hidden; for tests): a positional read
// across partitions reads a part's remaining range into memory once it holds
// at most this many entries, and selects there without descents (0: by
// descents to the very entry).
extern int partition_merge_rows;

// Checks the table, stores the definition and attaches the triggers; on a
// partitioned table, defines a part on every leaf partition too. Requires
// ownership of the table (and of every leaf partition). Returns the id; the
// aggregate still has to be built (build_aggregate).
int32 define_aggregate(const std::string &name, Oid source, const char *key, const char *sum, const char *ns,
                       int32 parent);
// Builds a new aggregate (every part of a partitioned table's aggregate):
// now, as the table owner, or by background backfills. Auto: in the
// background from 100,000 estimated rows (all partitions together).
void build_aggregate(const AggregateDef &def, BuildMode mode);
// Removes one aggregate: its triggers, job, trees and catalog row (not its
// parts: the caller drops them first).
void drop_aggregate(const AggregateDef &def);
// Whether `def` is the aggregate of a partitioned table (reads combine its parts).
bool is_partitioned_aggregate(const AggregateDef &def);
// Refuses `what` on a part: it belongs to its partitioned table's aggregate.
void refuse_part(const AggregateDef &def, const char *what);
// The leaf partitions of a partitioned table (sub-partitions' leaves too),
// locked in `mode`. Refuses foreign-table partitions (their rows fire no
// trigger of ours). pg-side.
std::vector<Oid> leaf_partitions(Oid parent, LOCKMODE mode);
// Gives every leaf partition of `parent`'s table that has no part one (built
// now, in this transaction) and removes the parts of tables that are no
// longer its leaf partitions. Returns how many parts changed.
int reconcile_parts(const AggregateDef &parent);
// True while this backend defines or drops parts itself: the DDL it runs
// for them (CREATE TRIGGER, ALTER TABLE ... ENABLE ALWAYS TRIGGER) must not
// reconcile again half way.
bool defining_parts();
// Runs fn with defining_parts() true.
void while_defining_parts(const std::function<void()> &fn);

}  // namespace aggr::pg
