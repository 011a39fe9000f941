// Keeping trees in step with their tables: the per-transaction op buffer,
// its flush into the trees, clearing, and the bulk build.
#pragma once
#include <map>
#include <functional>
#include <string>
#include <vector>

#include "../core/pending.hpp"
#include "catalog.hpp"
#include "spill.hpp"

namespace aggr::pg {

// A row change recorded by a trigger, applied at flush.
struct PendingOp {
  int32 aggr_id;
  bool insert;
  std::string ns, key;
  Sum value;
  CommandId cid = 0;  // the command whose row change this is (set by OpBuffer::add)
  std::uint64_t seq = 0;  // recording order in the transaction (set by OpBuffer::add)
};

// GUC aggr_ext.write_buffer_size (kB): ops a transaction keeps in memory
// before it sorts them into a run on disk.
extern int write_buffer_kb;

// Ops of the current transaction. Ops recorded inside a subtransaction
// are kept after a flush until it ends: if it aborts, its tree writes
// roll back and the ops flushed before it began must be applied again.
//
// Flushed ops are also kept, up to kJournalBytes, so that a read whose
// snapshot predates some of them (an open cursor, a query still fetching
// while the transaction writes) can take their effect back out.
//
// A large transaction (a bulk load) does not apply its ops to the trees each
// time the buffer fills: that would rewrite nearly every leaf per fill. It
// sorts them into runs in temporary files instead (spill), and the flush
// (before a read, at commit) merges all runs so that each leaf is written
// about once. Runs applied inside a subtransaction are kept until it ends,
// as in-memory ops are; the ops of an aborted subtransaction are skipped by
// their seq when a run is read.
class OpBuffer {
 public:
  void add(PendingOp op);
  void flush();
  bool empty() const { return flushed_ == ops_.size() && applied_runs_ == runs_.size(); }
  // The deltas that undo, for one tree, the flushed changes of commands at
  // or after `cid` (call right after flush()). Throws when such changes were
  // already dropped from the journal.
  std::vector<Delta> undo_since(int32 aggr_id, const std::string &ns, CommandId cid, const Ordering &order,
                                const std::string &name) const;
  // Whether this transaction recorded changes of the tree (aggr_id, ns) in
  // commands at or after `cid` (call right after flush()).
  bool changed_since(int32 aggr_id, const std::string &ns, CommandId cid) const;
  // A merge or clear of aggr_id's trees in this transaction folded in (or
  // removed) changes that are not this transaction's: the journal cannot
  // undo it for a read as of an earlier command.
  void note_fold(int32 aggr_id);
  // Whether such a fold happened in a command at or after `cid`, other than
  // a flush of the very query whose snapshot is `snap` (a read folds in,
  // as of its own statement, what the README's READ COMMITTED writers say).
  bool folded_since(int32 aggr_id, CommandId cid, Snapshot snap) const;
  void subxact_start(SubTransactionId id);
  void subxact_commit(SubTransactionId id);
  void subxact_abort(SubTransactionId id);
  void reset();

 private:
  struct Level {
    SubTransactionId id;
    std::uint64_t start_seq;
    std::size_t flushed_at_start, applied_runs_at_start;
  };
  void forget_flushed_if_top_level();
  void spill();
  std::vector<bool> sort_into(SpillRun &run, std::vector<const PendingOp *> &todo);
  void keep_unsorted(const std::vector<const PendingOp *> &todo, const std::vector<bool> &keep);
  void merge_runs();
  bool discarded(std::uint64_t seq) const;
  std::vector<PendingOp> ops_;  // in recording order: cid and seq never decrease
  std::size_t flushed_ = 0;
  std::size_t pending_bytes_ = 0;
  std::size_t journal_bytes_ = 0;    // of flushed ops still kept
  bool dropped_any_ = false;         // flushed ops were dropped from the journal...
  CommandId dropped_max_cid_ = 0;    // ...up to this command
  std::vector<Level> levels_;
  struct Fold {
    CommandId cid;
    Snapshot snap;  // the active snapshot then (its identity only; never dereferenced)
    TransactionId xmin, xmax;
  };
  std::map<int32, std::vector<Fold>> folds_;  // merges and clears of each aggregate's trees
  std::uint64_t next_seq_ = 0;
  std::vector<SpillRun> runs_;
  std::size_t applied_runs_ = 0;  // runs_[0, applied_runs_) are in the trees
  // Runs whose writing failed (temp_file_limit, disk full, a lock timeout):
  // their files are closed by the next flush, so that a transaction that
  // goes on after ROLLBACK TO neither holds the space nor commits with a
  // "temporary file leak" warning.
  std::vector<SpillRun> abandoned_;
  void close_abandoned();
  // Disjoint, ascending seq ranges [first, second) of aborted subtransactions.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> discarded_;
};

OpBuffer &op_buffer();

// The internal relations a writer needs open.
struct OpenTrees {
  Relations r{};
  Relation trees = nullptr, nodes = nullptr;
};
OpenTrees open_trees(LOCKMODE mode);
void close_trees(OpenTrees &o, LOCKMODE mode);

// Nets a run of ops of one tree (sorted by key, then time) to one op per entry.
std::vector<Op> net_ops(const std::vector<const PendingOp *> &run, const Ordering &order);
// The same run as signed deltas: -1 for the entry as it was before, +1 for it as it is after.
std::vector<Delta> signed_deltas(const std::vector<const PendingOp *> &run, const Ordering &order);
// The inserting transaction of the first other transaction's tree version
// this transaction wrote one tree on top of (InvalidTransactionId: none).
TransactionId foreign_tree_base(int32 aggr_id, int32 generation, const std::string &ns);
// Locks the tree, applies sorted ops to it and stores it.
ApplyStats apply_to_tree(const OpenTrees &o, CompiledAggregate &agg, const Ordering &order, int32 generation,
                         const std::string &ns, const std::vector<Op> &ops, bool count_drift);
// Appends netted ops to the log a running job replays, or a TRUNCATE
// marker (the job empties its generation at that point of the replay).
void append_log(int32 aggr_id, const std::string &ns, const std::vector<Op> &ops);
void append_truncate_marker(int32 aggr_id);
void register_transaction_callbacks();

// Visits every row of the source table as (namespace, entry, sum), in
// aggregate order (namespace, key, primary key), through an SPI cursor.
void scan_in_order(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit);
// Visits the rows `sql` (a scan query of `agg`) returns, in its order, until
// `visit` returns false.
void scan_rows(CompiledAggregate &agg, const std::string &sql,
               const std::function<bool(const CompiledAggregate::RowEntry &)> &visit);

// Empties one generation of an aggregate's trees (one namespace when ns != nullptr).
void clear_trees(const AggregateDef &def, int32 generation, const std::string *ns);
// Builds a new generation from an ordered scan of the source table (bottom
// up, full leaves), drops the old one and makes the aggregate ready.
// Returns the number of rows indexed. The caller keeps writers out.
std::uint64_t build_trees(const AggregateDef &def, const char *verb);

// The planner's row count of a table (pg_class.reltuples), or 100 rows a
// page if it was never analyzed. Guards its PostgreSQL calls.
int64 estimate_rows(Oid relid);

using RowVisitor = std::function<void(const CompiledAggregate::RowEntry &)>;
// Writes generation `target`'s trees with bulk builders (one tree per
// namespace) from the rows `scan` visits in aggregate order; `scan` returns
// false when it visited nothing (then nothing is written). `rows` counts
// them; `last`, if given, receives the last. Guards its PostgreSQL calls.
bool bulk_build(const AggregateDef &def, CompiledAggregate &agg, int32 target, const char *verb,
                const std::function<bool(const RowVisitor &)> &scan, std::uint64_t &rows,
                CompiledAggregate::RowEntry *last);

}  // namespace aggr::pg
