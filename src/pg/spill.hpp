// Sorted runs of a large transaction's ops, kept in temporary files so that
// a bulk load is applied to its trees once, in key order (see OpBuffer).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pg.hpp"

extern "C" {
typedef struct BufFile BufFile;
}

namespace aggr::pg {

struct PendingOp;

// One run: ops written in (aggregate, namespace, key, seq) order, read back
// once or more (a subtransaction that aborts after the run was applied makes
// it pending again). The file belongs to the top transaction: it outlives a
// subtransaction that aborts, and PostgreSQL deletes it at transaction end.
class SpillRun {
 public:
  SpillRun();
  SpillRun(SpillRun &&o) noexcept;
  SpillRun &operator=(SpillRun &&o) noexcept;
  SpillRun(const SpillRun &) = delete;
  SpillRun &operator=(const SpillRun &) = delete;
  ~SpillRun();

  void append(const PendingOp &op);
  void finish_writing();              // flushes what append buffered
  void close();                       // deletes the file (not while an error is being handled)
  void forget() { file_ = nullptr; }  // at abort: PostgreSQL closes the file itself

  std::uint64_t max_seq() const { return max_seq_; }
  CommandId max_cid() const { return max_cid_; }

  // Sequential reader; start() rewinds.
  void start_reading();
  bool next(PendingOp &op);  // false at the end

 private:
  void write_buffered();
  bool ensure(std::size_t n);

  BufFile *file_ = nullptr;
  std::string buf_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  std::uint64_t max_seq_ = 0;
  CommandId max_cid_ = 0;
};

}  // namespace aggr::pg
