#include "spill.hpp"

#include <cstring>

#include "guard.hpp"
#include "maintenance.hpp"

extern "C" {
#include "commands/tablespace.h"
#include "storage/buffile.h"
#include "utils/resowner.h"
}

namespace aggr::pg {

namespace {
constexpr std::size_t kIoChunk = 64u << 10;  // per-run buffer, for writing and reading

template <typename T>
void put(std::string &out, const T &v) {
  out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

template <typename T>
T get(const std::string &in, std::size_t &pos) {
  T v;
  std::memcpy(&v, in.data() + pos, sizeof v);
  pos += sizeof v;
  return v;
}

// Fixed part of a record: aggr_id, seq, cid, insert, ns length.
constexpr std::size_t kHead = sizeof(int32) + sizeof(std::uint64_t) + sizeof(CommandId) + 1 + sizeof(std::uint32_t);
}  // namespace

SpillRun::SpillRun() {
  pg_guard([&] {
    // Owned by the top transaction: a portal's or subtransaction's resource
    // owner would close the file while the run is still needed.
    MemoryContext old_cxt = MemoryContextSwitchTo(TopTransactionContext);
    ResourceOwner old_owner = CurrentResourceOwner;
    CurrentResourceOwner = TopTransactionResourceOwner;
    PrepareTempTablespaces();
    file_ = BufFileCreateTemp(false);
    CurrentResourceOwner = old_owner;
    MemoryContextSwitchTo(old_cxt);
  });
}

SpillRun::SpillRun(SpillRun &&o) noexcept { *this = std::move(o); }

SpillRun &SpillRun::operator=(SpillRun &&o) noexcept {
  std::swap(file_, o.file_);
  buf_.swap(o.buf_);
  pos_ = o.pos_;
  eof_ = o.eof_;
  max_seq_ = o.max_seq_;
  max_cid_ = o.max_cid_;
  return *this;
}

// The owner closes or forgets the file first; a leftover one is closed by
// PostgreSQL at transaction end.
SpillRun::~SpillRun() = default;

void SpillRun::close() {
  if (!file_) return;
  BufFile *f = file_;
  file_ = nullptr;
  pg_guard([&] {
    ResourceOwner old_owner = CurrentResourceOwner;
    CurrentResourceOwner = TopTransactionResourceOwner;
    BufFileClose(f);
    CurrentResourceOwner = old_owner;
  });
}

void SpillRun::append(const PendingOp &op) {
  put<int32>(buf_, op.aggr_id);
  put<std::uint64_t>(buf_, op.seq);
  put<CommandId>(buf_, op.cid);
  buf_.push_back(op.insert ? 1 : 0);
  put<std::uint32_t>(buf_, static_cast<std::uint32_t>(op.ns.size()));
  buf_.append(op.ns);
  put<std::uint32_t>(buf_, static_cast<std::uint32_t>(op.key.size()));
  buf_.append(op.key);
  put<Sum>(buf_, op.value);
  max_seq_ = std::max(max_seq_, op.seq);
  max_cid_ = std::max(max_cid_, op.cid);
  if (buf_.size() >= kIoChunk) write_buffered();
}

void SpillRun::write_buffered() {
  if (buf_.empty()) return;
  pg_guard([&] { BufFileWrite(file_, buf_.data(), buf_.size()); });
  buf_.clear();
}

void SpillRun::finish_writing() {
  write_buffered();
  std::string().swap(buf_);
}

void SpillRun::start_reading() {
  pg_guard([&] {
    if (BufFileSeek(file_, 0, 0, SEEK_SET) != 0) elog(ERROR, "could not rewind an aggr_ext spill file");
  });
  buf_.clear();
  pos_ = 0;
  eof_ = false;
}

// Makes n unread bytes available in buf_, reading on; false at a clean end.
bool SpillRun::ensure(std::size_t n) {
  while (buf_.size() - pos_ < n && !eof_) {
    buf_.erase(0, pos_);
    pos_ = 0;
    std::size_t have = buf_.size();
    buf_.resize(have + std::max(kIoChunk, n));
    std::size_t got = 0;
    pg_guard([&] { got = BufFileRead(file_, buf_.data() + have, buf_.size() - have); });
    buf_.resize(have + got);
    if (got == 0) eof_ = true;
  }
  if (buf_.size() - pos_ >= n) return true;
  if (buf_.size() != pos_) throw std::runtime_error("aggr_ext spill file ends inside a record");
  std::string().swap(buf_);
  return false;
}

bool SpillRun::next(PendingOp &op) {
  if (!ensure(kHead)) return false;
  op.aggr_id = get<int32>(buf_, pos_);
  op.seq = get<std::uint64_t>(buf_, pos_);
  op.cid = get<CommandId>(buf_, pos_);
  op.insert = buf_[pos_++] != 0;
  std::uint32_t ns_len = get<std::uint32_t>(buf_, pos_);
  if (!ensure(ns_len + sizeof(std::uint32_t))) throw std::runtime_error("aggr_ext spill file truncated");
  op.ns.assign(buf_, pos_, ns_len);
  pos_ += ns_len;
  std::uint32_t key_len = get<std::uint32_t>(buf_, pos_);
  if (!ensure(key_len + sizeof(Sum))) throw std::runtime_error("aggr_ext spill file truncated");
  op.key.assign(buf_, pos_, key_len);
  pos_ += key_len;
  op.value = get<Sum>(buf_, pos_);
  return true;
}

}  // namespace aggr::pg
