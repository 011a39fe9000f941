#include "sorted_scan.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "maintenance.hpp"

namespace aggr::pg {

// PostgreSQL's ordered scan sorts whole tuples through its generic sort
// (measured at 1M rows: ~250-310 ms of a ~470-590 ms build, where CREATE
// INDEX takes ~250 ms in all). When every key and primary key column is a
// plain by-value type and there is no namespace, the entries are collected
// from a scan in heap order and sorted here: on a 64-bit prefix of the
// first key column, then the comparison the trees use (the bulk builder
// checks the order it gets). Over maintenance_work_mem, or for other keys,
// callers use the SQL ordered scan (from the start: nothing was written).

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
  EntrySorter(const KeyLayout &layout, bool sums, std::size_t budget, std::uint64_t max_rows)
      : layout_(layout), sums_(sums), budget_(budget), max_rows_(std::min<std::uint64_t>(max_rows, UINT32_MAX)) {}

  // False when the entry would pass the memory budget or the row limit.
  bool add(const CompiledAggregate::RowEntry &e) {
    used_ += (e.key.size() > Item::kInline ? e.key.size() : 0) + sizeof(Item) + (sums_ ? sizeof(Sum) : 0);
    if (used_ > budget_ || items_.size() >= max_rows_) return false;
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
    if (sums_) {
      item.sum = static_cast<std::uint32_t>(values_.size());
      values_.push_back(e.value);
    }
    items_.push_back(item);
    return true;
  }

  // A total order: entries are unique (they end with the primary key).
  void sort() {
    std::size_t n = layout_.size();
    std::sort(items_.begin(), items_.end(), [&](const Item &a, const Item &b) {
      if (a.prefix != b.prefix) return a.prefix < b.prefix;
      int c = 0;
      if (!layout_.compare_plain(view(a), view(b), n, c))
        throw std::logic_error("aggr_ext: an entry of the build sort is not plain");
      return c < 0;
    });
  }

  template <typename Visit>
  void visit(Visit &&f) const {
    CompiledAggregate::RowEntry e;
    for (const Item &item : items_) {
      e.key.assign(view(item));
      e.value = sums_ ? values_[item.sum] : Sum{};
      f(e);
    }
  }

 private:
  std::string_view view(const Item &i) const {
    return i.length <= Item::kInline ? std::string_view(i.bytes, i.length) : std::string_view(arena_).substr(i.offset, i.length);
  }

  const KeyLayout &layout_;
  bool sums_;
  std::size_t budget_, used_ = 0;
  std::uint64_t max_rows_;
  std::string arena_;
  std::vector<Item> items_;
  std::vector<Sum> values_;
};

}  // namespace

bool sorts_in_memory(const CompiledAggregate &agg) {
  return agg.ns_expr() == nullptr && agg.layout().plain_prefix(agg.layout().size());
}

bool visit_sorted_in_memory(CompiledAggregate &agg, const std::function<void(const CompiledAggregate::RowEntry &)> &visit,
                            std::uint64_t max_rows) {
  if (!sorts_in_memory(agg)) return false;
  std::size_t budget = static_cast<std::size_t>(maintenance_work_mem) * 1024;
  EntrySorter sorter(agg.layout(), agg.tree_config().sum_kind != SumKind::None, budget, max_rows);
  bool fits = true;
  scan_rows(agg, agg.scan_query(false), [&](const CompiledAggregate::RowEntry &e) {
    fits = sorter.add(e);
    return fits;  // stops the scan once over the budget
  });
  if (!fits) return false;  // what was collected is freed on return
  sorter.sort();
  sorter.visit(visit);
  return true;
}

}  // namespace aggr::pg
