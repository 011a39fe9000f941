#include "sorted_scan.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "maintenance.hpp"
#include "spill.hpp"

namespace aggr::pg {

// PostgreSQL's ordered scan sorts whole tuples through its generic sort
// (measured at 1M rows: ~250-310 ms of a ~470-590 ms build, where CREATE
// INDEX takes ~250 ms in all). When every key and primary key column is a
// plain by-value type and there is no namespace, the entries are collected
// from a scan in heap order and sorted here: on a 64-bit prefix of the
// first key column, then the comparison the trees use (the bulk builder
// checks the order it gets). Over maintenance_work_mem the sorted entries
// go to temporary files in runs, merged at the end (or, for a caller that
// may not spill, nothing is visited); other keys use the SQL ordered scan.

namespace {

// One row's entry: the first key column's sort prefix, which decides most
// comparisons alone, its sum by index, and its bytes: inline when short (an
// integer key and primary key take 10 bytes), else in the arena. Inline
// bytes keep the sort and the ordered visit from touching the arena at
// random (measured: a cache miss per entry, a third of the build's time).
struct Item {
  static constexpr std::size_t kInline = 20;
  std::uint64_t prefix;
  std::uint32_t length;
  std::uint32_t sum;
  union {
    char bytes[kInline];
    std::uint64_t offset;
  };
};

// Entries of a table scanned in heap order, bounded by maintenance_work_mem.
class EntrySorter {
 public:
  EntrySorter(const KeyLayout &layout, SumKind kind, std::size_t budget, std::uint64_t max_rows, bool spill)
      : layout_(layout), kind_(kind), budget_(budget), max_rows_(max_rows), spill_(spill) {}
  ~EntrySorter() {
    for (SpillRun &run : runs_) run.forget();  // temporary files: closed by PostgreSQL at transaction end
  }

  // False when the entry would pass the memory budget or the row limit (or
  // would not compare without the guard, or carries a sum the tree's kind
  // does not keep: neither happens with entries as the layout encodes them).
  bool add(const CompiledAggregate::RowEntry &e) {
    std::size_t sum_bytes = kind_ == SumKind::Exact ? sizeof(int128) : kind_ == SumKind::Float ? sizeof(double) : 0;
    std::size_t entry_bytes = (e.key.size() > Item::kInline ? e.key.size() : 0) + sizeof(Item) + sum_bytes;
    used_ += entry_bytes;
    if (++rows_ > max_rows_) return false;
    if (used_ > budget_ || items_.size() >= UINT32_MAX) {
      if (!spill_ || items_.empty()) return false;
      spill_run();
      used_ = entry_bytes;
    }
    int self = 0;  // every column decodes without the guard (see sort)
    if (!layout_.compare_plain(e.key, e.key, layout_.size(), self)) return false;
    bool exact_only = e.value.approx == 0 && !std::signbit(e.value.approx);
    if ((kind_ == SumKind::Exact && !exact_only) || (kind_ == SumKind::Float && e.value.exact != 0) ||
        (kind_ == SumKind::None && !(exact_only && e.value.exact == 0)))
      return false;
    Item item;
    item.prefix = layout_.sort_prefix(e.key);
    item.length = static_cast<std::uint32_t>(e.key.size());
    item.sum = 0;
    if (e.key.size() <= Item::kInline) {
      memcpy(item.bytes, e.key.data(), e.key.size());
    } else {
      item.offset = arena_.size();
      arena_ += e.key;
    }
    // Only the part of the sum the tree's kind keeps: 16 or 8 bytes, not 32.
    if (kind_ == SumKind::Exact) {
      item.sum = static_cast<std::uint32_t>(exact_.size());
      exact_.push_back(e.value.exact);
    } else if (kind_ == SumKind::Float) {
      item.sum = static_cast<std::uint32_t>(approx_.size());
      approx_.push_back(e.value.approx);
    }
    items_.push_back(item);
    return true;
  }

  void reserve(std::uint64_t rows) {
    items_.reserve(std::min<std::uint64_t>(rows, budget_ / sizeof(Item)));
    if (kind_ == SumKind::Exact) exact_.reserve(items_.capacity());
    if (kind_ == SumKind::Float) approx_.reserve(items_.capacity());
  }

 private:
  // Entries by prefix, then by the comparison the trees use: a total order
  // (entries are unique: they end with the primary key).
  int order(std::uint64_t prefix_a, std::string_view a, std::uint64_t prefix_b, std::string_view b) const {
    if (prefix_a != prefix_b) return prefix_a < prefix_b ? -1 : 1;
    int c = 0;
    (void)layout_.compare_plain(a, b, layout_.size(), c);  // cannot fail: add() checked every entry
    return c;
  }

  void read(const Item &item, std::string &key, Sum &value) const {
    key.assign(view(item));
    value = Sum{};
    if (kind_ == SumKind::Exact) value.exact = exact_[item.sum];
    if (kind_ == SumKind::Float) value.approx = approx_[item.sum];
  }

  // Sorted by the prefix's bytes, most significant first, in place (American
  // flag sort: no second buffer beyond maintenance_work_mem), down to ranges
  // of at most kSmallRange entries or of one prefix, which sort_range orders
  // by the whole comparison. Buckets follow prefix order, which the whole
  // comparison agrees with, so the result is the order `less` gives
  // (measured at 1M random integer keys: the comparison sort took a fifth
  // of the build).
  void sort() { radix_sort(0, items_.size(), 0); }

  static constexpr std::size_t kSmallRange = 64;

  void radix_sort(std::size_t begin, std::size_t end, int byte) {
    while (end - begin > kSmallRange && byte < 8) {
      int shift = 56 - 8 * byte;
      std::size_t count[256] = {};
      for (std::size_t i = begin; i < end; ++i) ++count[(items_[i].prefix >> shift) & 0xff];
      if (count[(items_[begin].prefix >> shift) & 0xff] == end - begin) {  // one bucket: next byte
        ++byte;
        continue;
      }
      std::size_t head[256], tail[256];
      std::size_t at = begin;
      for (int b = 0; b < 256; ++b) {
        head[b] = at;
        at += count[b];
        tail[b] = at;
      }
      for (int b = 0; b < 256; ++b) {
        while (head[b] < tail[b]) {
          Item item = items_[head[b]];
          int d = static_cast<int>((item.prefix >> shift) & 0xff);
          while (d != b) {  // carry it to its bucket, taking what was there
            std::swap(item, items_[head[d]++]);
            d = static_cast<int>((item.prefix >> shift) & 0xff);
          }
          items_[head[b]++] = item;
        }
      }
      if (end - begin > (std::size_t{1} << 16)) pg_guard([] { CHECK_FOR_INTERRUPTS(); });
      std::size_t from = begin;
      for (int b = 0; b < 256; ++b) {
        if (count[b] > 1) radix_sort(from, from + count[b], byte + 1);
        from += count[b];
      }
      return;
    }
    sort_range(begin, end);
  }

  // [begin, end) by the whole comparison: in runs of 64k entries merged
  // pairwise, serving interrupts (a cancel) between runs and merges (many
  // equal keys leave one big range): std::sort itself cannot be
  // interrupted, and a comparison may not throw out of it (an element held
  // aside mid-sort would be lost).
  void sort_range(std::size_t begin, std::size_t end) {
    auto less = [&](const Item &a, const Item &b) { return order(a.prefix, view(a), b.prefix, view(b)) < 0; };
    auto at = [&](std::size_t k) { return items_.begin() + static_cast<std::ptrdiff_t>(std::min(k, end)); };
    constexpr std::size_t kRun = std::size_t{1} << 16;
    for (std::size_t i = begin; i < end; i += kRun) {
      std::sort(at(i), at(i + kRun), less);
      if (end - begin > kRun) pg_guard([] { CHECK_FOR_INTERRUPTS(); });
    }
    for (std::size_t width = kRun; width < end - begin; width *= 2) {
      for (std::size_t i = begin; i + width < end; i += 2 * width) {
        std::inplace_merge(at(i), at(i + width), at(i + 2 * width), less);
        pg_guard([] { CHECK_FOR_INTERRUPTS(); });
      }
    }
  }

 public:
  // Every entry in order: sorted in memory, or, when runs were spilled, the
  // last run spilled too and all merged.
  template <typename Visit>
  void visit(Visit &&f) {
    CompiledAggregate::RowEntry e;
    if (runs_.empty()) {
      sort();
      for (const Item &item : items_) {
        read(item, e.key, e.value);
        f(e);
      }
      return;
    }
    if (!items_.empty()) spill_run();
    merge_runs([&](const PendingOp &op) {
      e.key = op.key;
      e.value = op.value;
      f(e);
    });
  }

 private:
  // Over the budget: the entries so far, sorted, go to a temporary file.
  void spill_run() {
    sort();
    SpillRun run;
    PendingOp op{0, true, std::string(), std::string(), Sum{}};
    for (const Item &item : items_) {
      read(item, op.key, op.value);
      run.append(op);
    }
    run.finish_writing();
    runs_.push_back(std::move(run));
    items_.clear();
    arena_.clear();
    exact_.clear();
    approx_.clear();
  }

  // A k-way merge of the runs (each sorted), smallest head first.
  template <typename Emit>
  void merge_runs(Emit &&emit) {
    struct Head {
      std::uint64_t prefix;
      std::size_t run;
    };
    std::vector<PendingOp> heads(runs_.size());
    auto later = [&](const Head &a, const Head &b) {  // the heap's top is its greatest
      return order(a.prefix, heads[a.run].key, b.prefix, heads[b.run].key) > 0;
    };
    std::vector<Head> heap;
    for (std::size_t r = 0; r < runs_.size(); ++r) {
      runs_[r].start_reading();
      if (runs_[r].next(heads[r])) heap.push_back(Head{layout_.sort_prefix(heads[r].key), r});
    }
    std::make_heap(heap.begin(), heap.end(), later);
    std::uint64_t emitted = 0;
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Head h = heap.back();
      heap.pop_back();
      emit(heads[h.run]);
      if ((++emitted & 0xFFFF) == 0) pg_guard([] { CHECK_FOR_INTERRUPTS(); });
      if (runs_[h.run].next(heads[h.run])) {
        heap.push_back(Head{layout_.sort_prefix(heads[h.run].key), h.run});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    }
    for (SpillRun &run : runs_) run.close();
    runs_.clear();
  }

  std::string_view view(const Item &i) const {
    return i.length <= Item::kInline ? std::string_view(i.bytes, i.length) : std::string_view(arena_).substr(i.offset, i.length);
  }

  const KeyLayout &layout_;
  SumKind kind_;
  std::size_t budget_, used_ = 0;
  std::uint64_t max_rows_, rows_ = 0;
  bool spill_;
  std::vector<SpillRun> runs_;
  std::string arena_;
  std::vector<Item> items_;
  std::vector<int128> exact_;
  std::vector<double> approx_;
};

}  // namespace

bool sorts_in_memory(const CompiledAggregate &agg) {
  return agg.ns_expr() == nullptr && agg.layout().plain_prefix(agg.layout().size());
}

bool visit_sorted(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit,
                  std::uint64_t max_rows, bool spill) {
  if (!sorts_in_memory(agg)) return false;
  std::size_t budget = static_cast<std::size_t>(maintenance_work_mem) * 1024;
  // A table the planner already counts as too big goes elsewhere at once,
  // not after reading (and evaluating the keys of) a budget's worth of rows;
  // the items are reserved up front (up to the budget), so that growing them
  // does not hold two copies at once.
  std::uint64_t estimate = static_cast<std::uint64_t>(std::max<int64>(estimate_rows(agg.def().source), 0));
  if (estimate > max_rows || (!spill && estimate > budget / sizeof(Item))) return false;
  EntrySorter sorter(agg.layout(), agg.tree_config().sum_kind, budget, max_rows, spill);
  sorter.reserve(estimate + estimate / 8 + 16);
  bool fits = true;
  scan_rows(agg, agg.scan_query(false), [&](const CompiledAggregate::RowEntry &e) {
    fits = sorter.add(e);
    return fits;  // stops the scan at the row limit (or over the budget without spilling)
  });
  if (!fits) return false;  // what was collected is freed on return
  sorter.visit(visit);
  return true;
}

}  // namespace aggr::pg
