// Encoding of key, primary key and namespace values into the byte strings
// the core orders, and their comparison through each type's btree opclass.
#pragma once
#include <string>
#include <vector>

#include "../core/types.hpp"
#include "guard.hpp"

namespace aggr::pg {

struct Column {
  Oid type = InvalidOid;
  int32 typmod = -1;
  Oid collation = InvalidOid;
  int16 typlen = 0;
  bool typbyval = false;
  char typalign = 'c';
  bool desc = false;
  bool nulls_first = false;
  SortSupportData ssup;  // prepared comparator (direction and NULL placement included)
  // A by-value built-in type whose default comparator cannot raise an error:
  // compared without PostgreSQL's error handling (see compare_plain).
  bool plain = false;
};

// Columns of an entry key: the aggregate's key columns, then the primary key.
class KeyLayout {
 public:
  // Prepares sort support; call inside pg_guard (looks up catalogs).
  void add_column(Oid type, int32 typmod, Oid collation, bool desc, bool nulls_first);
  std::size_t size() const { return cols_.size(); }
  const Column &column(std::size_t i) const { return cols_[i]; }

  // PostgreSQL-side (call inside pg_guard): append one column's value.
  void encode(std::string &out, std::size_t col, Datum value, bool isnull) const;
  // Reads one column at `pos`, advancing it. Pointer results point into
  // `bytes` or into memory palloc'd in the current context.
  Datum decode(std::string_view bytes, std::size_t &pos, std::size_t col, bool &isnull) const;
  int compare_values(std::size_t col, Datum a, bool an, Datum b, bool bn) const;
  // Compares encoded entries over columns [0, ncols).
  int compare_raw(std::string_view a, std::string_view b, std::size_t ncols) const;
  // Whether columns [0, ncols) are all plain.
  bool plain_prefix(std::size_t ncols) const { return ncols <= plain_cols_; }
  // compare_raw for plain columns, callable outside pg_guard (no setjmp, no
  // memory context): false when a column is not plain or an entry is
  // malformed; the guarded compare_raw then reports it.
  bool compare_plain(std::string_view a, std::string_view b, std::size_t ncols, int &result) const noexcept;
  // For entries whose first column is plain: 64 bits that order like that
  // column (direction and NULL placement included): a < b implies
  // sort_prefix(a) <= sort_prefix(b); equal prefixes say nothing.
  std::uint64_t sort_prefix(std::string_view entry) const noexcept;
  // Reads one plain column at `pos`, advancing it; false if malformed.
  bool decode_plain(std::string_view bytes, std::size_t &pos, std::size_t col, Datum &value, bool &isnull) const noexcept;

 private:
  std::vector<Column> cols_;
  std::size_t plain_cols_ = 0;  // leading plain columns
};

// Total order of entries for the core; every comparison is guarded.
class EntryOrdering : public aggr::Ordering {
 public:
  explicit EntryOrdering(const KeyLayout &layout);
  ~EntryOrdering() override;
  int compare(std::string_view a, std::string_view b) const override;

 private:
  const KeyLayout &layout_;
  MemoryContext scratch_;
};

// A key value as a caller passed it: any type, untyped literals included.
struct KeyValue {
  Datum value = 0;
  bool isnull = false;
  Oid type = InvalidOid;
};

// Before or after every entry whose first `values.size()` key columns equal
// `values`. With no values: before / after everything. A value of another
// type than its column means exactly what `key < value` / `key = value`
// mean in SQL (never a rounded cast); NULL is a NULL key value.
class KeyProbe : public aggr::Probe {
 public:
  KeyProbe(const KeyLayout &layout, const std::vector<KeyValue> &values, bool after);
  ~KeyProbe() override;
  KeyProbe(const KeyProbe &) = delete;
  KeyProbe &operator=(const KeyProbe &) = delete;
  int compare_to(std::string_view entry) const override;

  struct Bound;  // one column's value and comparator (keys.cpp)

 private:
  int compare_column(std::size_t col, Datum value, bool isnull) const;  // probe vs entry value; pg-side
  bool compare_plain(std::string_view entry, int &result) const noexcept;

  const KeyLayout &layout_;
  std::vector<Bound> bounds_;
  bool after_;
  MemoryContext state_ = nullptr;    // comparators and converted values
  MemoryContext scratch_ = nullptr;  // reset after each comparison
  ExprContext *econtext_ = nullptr;  // evaluates SQL comparisons (Sql bounds only)
  bool plain_ = false;               // plain columns, bounds of their own type or NULL
};

// How an aggregate's sum_value is typed, and conversions to and from Sum.
struct SumSpec {
  SumKind kind = SumKind::None;
  int scale = 0;  // decimal places of an exact numeric sum
  Sum from_datum(Datum value, bool isnull, Oid type) const;  // pg-side
  Datum to_numeric(const Sum &s) const;                        // pg-side
};

// Coerces argument `argno` of a "any" parameter to `target`; sets isnull.
// Errors name `what` and the expected type. pg-side.
Datum coerce_any_arg(FunctionCallInfo fcinfo, int argno, Oid target, int32 typmod, const char *what, bool *isnull);
// Coerces a Datum of type `source` to `target`: untyped literals and text
// through the target's input function, other types by assignment cast. A
// cast that changes the value (1.5 to integer 2) is an error (42804): the
// value would no longer equal what the caller passed.
Datum coerce_value(Datum value, Oid source, Oid target, int32 typmod, const char *what);

std::string int128_to_string(aggr::int128 v);

}  // namespace aggr::pg
