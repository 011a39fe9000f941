#include "keys.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

extern "C" {
#include "parser/parse_oper.h"
}

namespace aggr::pg {

namespace {
// Built-in by-value types whose default btree comparator (sort support or
// its fmgr shim) only compares and never raises an error. Keys always sort
// by their type's default opclass, so the type decides the comparator; a
// domain over one of these has its own OID and keeps the guarded path.
bool plain_type(Oid type) {
  switch (type) {
    case BOOLOID:
    case CHAROID:
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case OIDOID:
    case FLOAT4OID:
    case FLOAT8OID:
    case DATEOID:
    case TIMEOID:
    case TIMESTAMPOID:
    case TIMESTAMPTZOID:
      return true;
    default:
      return false;
  }
}
}  // namespace

void KeyLayout::add_column(Oid type, int32 typmod, Oid collation, bool desc, bool nulls_first) {
  Column c;
  c.type = type;
  c.typmod = typmod;
  c.collation = collation;
  c.desc = desc;
  c.nulls_first = nulls_first;
  get_typlenbyvalalign(type, &c.typlen, &c.typbyval, &c.typalign);
  TypeCacheEntry *tc = lookup_type_cache(type, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
  Oid op = desc ? tc->gt_opr : tc->lt_opr;
  if (!OidIsValid(op))
    ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                    errmsg("type %s has no default btree operator class", format_type_be(type)),
                    errhint("Aggregate keys need a type that ORDER BY can sort with its default ordering.")));
  memset(&c.ssup, 0, sizeof c.ssup);
  c.ssup.ssup_cxt = CurrentMemoryContext;  // the owner's context
  c.ssup.ssup_collation = collation;
  c.ssup.ssup_nulls_first = nulls_first;
  c.ssup.abbreviate = false;
  PrepareSortSupportFromOrderingOp(op, &c.ssup);
  c.plain = plain_type(type) && c.typbyval && (c.typlen == 1 || c.typlen == 2 || c.typlen == 4 || c.typlen == 8);
  if (c.plain && plain_cols_ == cols_.size()) ++plain_cols_;
  cols_.push_back(c);
}

namespace {
constexpr char kNull = 0, kValue = 1, kShortVarlena = 2, kLongVarlena = 3;

void put_u32(std::string &out, uint32 v) { out.append(reinterpret_cast<const char *>(&v), 4); }
}  // namespace

void KeyLayout::encode(std::string &out, std::size_t col, Datum value, bool isnull) const {
  const Column &c = cols_[col];
  if (isnull) {
    out.push_back(kNull);
    return;
  }
  if (c.typlen == -1) {
    struct varlena *v = PG_DETOAST_DATUM_PACKED(value);
    uint32 len = VARSIZE_ANY_EXHDR(v);
    const char *data = VARDATA_ANY(v);
    if (len + VARHDRSZ_SHORT <= VARATT_SHORT_MAX) {
      // Stored as a complete short varlena: decodes without a copy.
      out.push_back(kShortVarlena);
      char hdr[1];
      SET_VARSIZE_SHORT(hdr, len + VARHDRSZ_SHORT);
      out.push_back(hdr[0]);
    } else {
      out.push_back(kLongVarlena);
      put_u32(out, len);
    }
    out.append(data, len);
    return;
  }
  out.push_back(kValue);
  if (c.typlen == -2) {
    const char *s = DatumGetCString(value);
    out.append(s, strlen(s) + 1);
  } else if (c.typbyval) {
    switch (c.typlen) {
      case 1: { char v = DatumGetChar(value); out.append(&v, 1); break; }
      case 2: { int16 v = DatumGetInt16(value); out.append(reinterpret_cast<char *>(&v), 2); break; }
      case 4: { int32 v = DatumGetInt32(value); out.append(reinterpret_cast<char *>(&v), 4); break; }
      default: { int64 v = DatumGetInt64(value); out.append(reinterpret_cast<char *>(&v), 8); break; }
    }
  } else {
    out.append(DatumGetPointer(value), static_cast<std::size_t>(c.typlen));
  }
}

Datum KeyLayout::decode(std::string_view bytes, std::size_t &pos, std::size_t col, bool &isnull) const {
  const Column &c = cols_[col];
  auto need = [&](std::size_t n) {
    if (n > bytes.size() - pos) ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("aggregate entry key is truncated")));
  };
  need(1);
  char flag = bytes[pos++];
  isnull = flag == kNull;
  if (isnull) return (Datum)0;
  const char *p = bytes.data() + pos;
  if (c.typlen == -1) {
    if (flag == kShortVarlena) {
      need(1);
      // A forged header must not make the type's code read a 4-byte header or past the key.
      if (!VARATT_IS_1B(p) || VARATT_IS_1B_E(p) || VARSIZE_1B(p) < VARHDRSZ_SHORT)
        ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("aggregate entry key has a corrupt length header")));
      std::size_t total = VARSIZE_1B(p);
      need(total);
      pos += total;
      return PointerGetDatum(p);
    }
    if (flag != kLongVarlena) ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("aggregate entry key is corrupt")));
    need(4);
    uint32 len;
    memcpy(&len, p, 4);
    need(4 + static_cast<std::size_t>(len));
    struct varlena *v = static_cast<struct varlena *>(palloc(len + VARHDRSZ));
    SET_VARSIZE(v, len + VARHDRSZ);
    memcpy(VARDATA(v), p + 4, len);
    pos += 4 + len;
    return PointerGetDatum(v);
  }
  if (flag != kValue) ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("aggregate entry key is corrupt")));
  if (c.typlen == -2) {
    const void *end = memchr(p, 0, bytes.size() - pos);
    if (!end) ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("aggregate entry key is truncated")));
    pos += static_cast<const char *>(end) - p + 1;
    return CStringGetDatum(p);
  }
  need(static_cast<std::size_t>(c.typlen));
  pos += static_cast<std::size_t>(c.typlen);
  if (c.typbyval) {
    switch (c.typlen) {
      case 1: return CharGetDatum(*p);
      case 2: { int16 v; memcpy(&v, p, 2); return Int16GetDatum(v); }
      case 4: { int32 v; memcpy(&v, p, 4); return Int32GetDatum(v); }
      default: { int64 v; memcpy(&v, p, 8); return Int64GetDatum(v); }
    }
  }
  if (c.typalign == 'c') return PointerGetDatum(p);
  void *copy = palloc(static_cast<std::size_t>(c.typlen));  // palloc is maximally aligned
  memcpy(copy, p, static_cast<std::size_t>(c.typlen));
  return PointerGetDatum(copy);
}

int KeyLayout::compare_values(std::size_t col, Datum a, bool an, Datum b, bool bn) const {
  return ApplySortComparator(a, an, b, bn, const_cast<SortSupport>(&cols_[col].ssup));
}

int KeyLayout::compare_raw(std::string_view a, std::string_view b, std::size_t ncols) const {
  std::size_t pa = 0, pb = 0;
  for (std::size_t i = 0; i < ncols; ++i) {
    bool an, bn;
    Datum da = decode(a, pa, i, an);
    Datum db = decode(b, pb, i, bn);
    int c = compare_values(i, da, an, db, bn);
    if (c != 0) return c;
  }
  return 0;
}

bool KeyLayout::decode_plain(std::string_view bytes, std::size_t &pos, std::size_t col, Datum &value,
                             bool &isnull) const noexcept {
  const Column &c = cols_[col];
  if (!c.plain || pos >= bytes.size()) return false;
  char flag = bytes[pos++];
  isnull = flag == kNull;
  value = (Datum)0;
  if (isnull) return true;
  std::size_t len = static_cast<std::size_t>(c.typlen);
  if (flag != kValue || bytes.size() - pos < len) return false;
  const char *p = bytes.data() + pos;
  pos += len;
  switch (len) {
    case 1: value = CharGetDatum(*p); break;
    case 2: { int16 v; memcpy(&v, p, 2); value = Int16GetDatum(v); break; }
    case 4: { int32 v; memcpy(&v, p, 4); value = Int32GetDatum(v); break; }
    default: { int64 v; memcpy(&v, p, 8); value = Int64GetDatum(v); break; }
  }
  return true;
}

namespace {
std::uint64_t signed_prefix(int64 v) { return static_cast<std::uint64_t>(v) ^ (std::uint64_t{1} << 63); }

// Floats in PostgreSQL's order: -0 equals 0, every NaN equals every other
// and sorts after +Infinity.
std::uint64_t float_prefix(double v) {
  if (std::isnan(v)) return UINT64_MAX;
  if (v == 0) v = 0;  // -0 as 0
  std::uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  return bits >> 63 ? ~bits : bits | (std::uint64_t{1} << 63);
}
}  // namespace

std::uint64_t KeyLayout::sort_prefix(std::string_view entry) const noexcept {
  std::size_t pos = 0;
  Datum d;
  bool isnull;
  if (cols_.empty() || !decode_plain(entry, pos, 0, d, isnull)) return 0;
  const Column &c = cols_[0];
  if (isnull) return c.nulls_first ? 0 : UINT64_MAX;
  std::uint64_t u;
  switch (c.type) {
    case BOOLOID: u = DatumGetBool(d) ? 1 : 0; break;
    case CHAROID: u = static_cast<uint8>(DatumGetChar(d)); break;  // "char" compares unsigned
    case INT2OID: u = signed_prefix(DatumGetInt16(d)); break;
    case INT4OID:
    case DATEOID: u = signed_prefix(DatumGetInt32(d)); break;
    case OIDOID: u = DatumGetObjectId(d); break;
    case FLOAT4OID: u = float_prefix(DatumGetFloat4(d)); break;
    case FLOAT8OID: u = float_prefix(DatumGetFloat8(d)); break;
    default: u = signed_prefix(DatumGetInt64(d)); break;  // int8, time, timestamp, timestamptz
  }
  return c.desc ? ~u : u;
}

bool KeyLayout::compare_plain(std::string_view a, std::string_view b, std::size_t ncols, int &result) const noexcept {
  if (!plain_prefix(ncols)) return false;
  std::size_t pa = 0, pb = 0;
  for (std::size_t i = 0; i < ncols; ++i) {
    Datum da, db;
    bool an, bn;
    if (!decode_plain(a, pa, i, da, an) || !decode_plain(b, pb, i, db, bn)) return false;
    int c = ApplySortComparator(da, an, db, bn, const_cast<SortSupport>(&cols_[i].ssup));
    if (c != 0) {
      result = c;
      return true;
    }
  }
  result = 0;
  return true;
}

EntryOrdering::EntryOrdering(const KeyLayout &layout) : layout_(layout) {
  pg_guard([&] { scratch_ = AllocSetContextCreate(CurrentMemoryContext, "aggr_ext compare", ALLOCSET_SMALL_SIZES); });
}
EntryOrdering::~EntryOrdering() { MemoryContextDelete(scratch_); }

int EntryOrdering::compare(std::string_view a, std::string_view b) const {
  int result = 0;
  // Most keys and primary keys are integers, floats or timestamps: compared
  // without a setjmp and a memory context per comparison (sorts, tree
  // descents and leaf merges make millions of them).
  if (layout_.compare_plain(a, b, layout_.size(), result)) return result;
  MemoryContext scratch = scratch_;
  const KeyLayout &layout = layout_;
  pg_guard([&] {
    MemoryContext old = MemoryContextSwitchTo(scratch);
    result = layout.compare_raw(a, b, layout.size());
    MemoryContextSwitchTo(old);
    MemoryContextReset(scratch);
  });
  return result;
}

// ---------------------------------------------------------------- probes

namespace {

enum class BoundKind {
  Null,       // a NULL key value
  Key,        // a value of the column's own type, compared by its sort support
  CrossType,  // a value of another type, compared by the column's btree opfamily
  Sql,        // compared by evaluating `key < value` / `key = value` as SQL resolves them
};

}  // namespace

struct KeyProbe::Bound {
  BoundKind kind = BoundKind::Null;
  Datum value = 0;                              // Key, CrossType
  FmgrInfo *cross = nullptr;                    // CrossType: btree comparison (key type, value type)
  ExprState *less = nullptr, *equal = nullptr;  // Sql
};

namespace {

// Types whose mixed comparisons SQL resolves through monotonic implicit
// casts: comparing through them keeps the tree's order.
bool numeric_family(Oid type) {
  switch (type) {
    case INT2OID:
    case INT4OID:
    case INT8OID:
    case NUMERICOID:
    case FLOAT4OID:
    case FLOAT8OID:
      return true;
    default:
      return false;
  }
}

// `key <op> value` parsed exactly as SQL parses it (operator resolution,
// implicit casts), then planned so that a cast of the constant side is
// folded. The key is a CaseTestExpr read from the expression context.
// NULL when SQL has no such operator.
Expr *sql_comparison(const char *op, Oid key_type, Oid collation, Datum value, Oid value_type) {
  List *name = list_make1(makeString(pstrdup(op)));
  Operator found = oper(NULL, name, key_type, value_type, true, -1);
  if (!found) return nullptr;
  ReleaseSysCache(found);
  CaseTestExpr *key = makeNode(CaseTestExpr);
  key->typeId = key_type;
  key->typeMod = -1;
  key->collation = collation;
  int16 len;
  bool byval;
  get_typlenbyval(value_type, &len, &byval);
  Node *constant = (Node *)makeConst(value_type, -1, get_typcollation(value_type), len, value, false, byval);
  ParseState *ps = make_parsestate(NULL);
  Expr *expr = make_op(ps, name, (Node *)key, constant, NULL, -1);
  assign_expr_collations(ps, (Node *)expr);
  free_parsestate(ps);
  if (exprType((Node *)expr) != BOOLOID) return nullptr;
  return expression_planner(expr);
}

bool evaluate(ExprState *state, ExprContext *econtext, Datum key) {
  econtext->caseValue_datum = key;
  econtext->caseValue_isNull = false;
  bool isnull = false;
  Datum result = ExecEvalExprSwitchContext(state, econtext, &isnull);
  return !isnull && DatumGetBool(result);
}

// The bound `key < value` compares against, when SQL compares the key
// itself (no cast on the key side) with a btree operator of the key's
// opfamily: the bound is then the value SQL converted it to.
bool bound_from_operator(Expr *less, Oid key_type, KeyProbe::Bound &b) {
  if (!less || !IsA(less, OpExpr)) return false;
  OpExpr *op = (OpExpr *)less;
  Node *left = (Node *)linitial(op->args), *right = (Node *)lsecond(op->args);
  while (IsA(left, RelabelType)) left = (Node *)((RelabelType *)left)->arg;  // binary-compatible: same datum
  if (!IsA(left, CaseTestExpr) || !IsA(right, Const) || ((Const *)right)->constisnull) return false;
  TypeCacheEntry *tc = lookup_type_cache(key_type, TYPECACHE_BTREE_OPFAMILY);
  if (!OidIsValid(tc->btree_opf) || !op_in_opfamily(op->opno, tc->btree_opf)) return false;
  int strategy;
  Oid left_type, right_type;  // as the opfamily registers them (text for a varchar key)
  get_op_opfamily_properties(op->opno, tc->btree_opf, false, &strategy, &left_type, &right_type);
  b.value = ((Const *)right)->constvalue;
  if (right_type == left_type) {
    b.kind = BoundKind::Key;
    return true;
  }
  Oid proc = get_opfamily_proc(tc->btree_opf, left_type, right_type, BTORDER_PROC);
  if (!OidIsValid(proc)) return false;
  b.kind = BoundKind::CrossType;
  b.cross = (FmgrInfo *)palloc0(sizeof(FmgrInfo));
  fmgr_info(proc, b.cross);
  return true;
}

KeyProbe::Bound make_bound(const Column &c, const KeyValue &v) {
  KeyProbe::Bound b;
  if (v.isnull) return b;
  Oid key_type = getBaseType(c.type), type = getBaseType(v.type);
  if (type == key_type) {
    b.kind = BoundKind::Key;
    b.value = v.value;
    return b;
  }
  if (type == UNKNOWNOID || type == CSTRINGOID) {  // an untyped literal is read as the key type
    b.kind = BoundKind::Key;
    b.value = coerce_value(v.value, type, c.type, -1, "key value");
    return b;
  }
  Expr *less = sql_comparison("<", key_type, c.collation, v.value, type);
  if (bound_from_operator(less, key_type, b)) return b;
  if (less && numeric_family(key_type) && numeric_family(type)) {
    // SQL casts the key (int4 to numeric for 500.7): evaluate its comparison.
    Expr *equal = sql_comparison("=", key_type, c.collation, v.value, type);
    if (equal) {
      b.kind = BoundKind::Sql;
      b.less = ExecInitExpr(less, NULL);
      b.equal = ExecInitExpr(equal, NULL);
      return b;
    }
  }
  // No comparison SQL could make: convert, refusing a conversion that changes the value.
  b.kind = BoundKind::Key;
  b.value = coerce_value(v.value, type, c.type, -1, "key value");
  return b;
}

int sign(int v) { return (v > 0) - (v < 0); }

// An integer key that SQL compares through a cast (int4 as numeric against
// 500.7) ends the probe between two integers or at an end of the type:
// find that integer once, so that the walk compares integers.

// Where `value` falls among the key type's integers: a first guess only.
int64 integer_guess(Datum value, Oid type, int64 lo, int64 hi) {
  double d;
  if (type == FLOAT4OID)
    d = DatumGetFloat4(value);
  else if (type == FLOAT8OID)
    d = DatumGetFloat8(value);
  else if (type == NUMERICOID)
    d = strtod(DatumGetCString(DirectFunctionCall1(numeric_out, value)), nullptr);  // huge: HUGE_VAL, no error
  else
    return lo;
  if (std::isnan(d) || d >= static_cast<double>(hi)) return hi;
  if (d <= static_cast<double>(lo)) return lo;
  return static_cast<int64>(std::floor(d));
}

// The largest k in [lo, hi] for which `holds` is true, given that it holds
// for lo and, once false, stays false; gallops from `guess`, then bisects.
template <typename Pred>
int64 last_holding(int64 lo, int64 hi, int64 guess, Pred holds) {
  aggr::int128 yes = lo, no = static_cast<aggr::int128>(hi) + 1;
  aggr::int128 g = std::min<aggr::int128>(std::max<aggr::int128>(guess, lo), hi);
  aggr::int128 step = 1;
  if (holds(static_cast<int64>(g))) {
    yes = g;
    for (; yes + step < no; step *= 2) {
      if (!holds(static_cast<int64>(yes + step))) {
        no = yes + step;
        break;
      }
      yes += step;
    }
  } else {
    no = g;
    for (; no - step > yes; step *= 2) {
      if (holds(static_cast<int64>(no - step))) {
        yes = no - step;
        break;
      }
      no -= step;
    }
  }
  while (no - yes > 1) {
    aggr::int128 mid = yes + (no - yes) / 2;
    (holds(static_cast<int64>(mid)) ? yes : no) = mid;
  }
  return static_cast<int64>(yes);
}

// Turns the Sql bound `b` of an integer column, the probe's last, into the
// integer Key bound (and `after`) that splits the entries the same way.
void reduce_integer_bound(const Column &c, const KeyValue &v, KeyProbe::Bound &b, bool &after, ExprContext *econtext) {
  Oid key_type = getBaseType(c.type);
  int64 lo, hi;
  switch (key_type) {
    case INT2OID: lo = PG_INT16_MIN; hi = PG_INT16_MAX; break;
    case INT4OID: lo = PG_INT32_MIN; hi = PG_INT32_MAX; break;
    case INT8OID: lo = PG_INT64_MIN; hi = PG_INT64_MAX; break;
    default: return;
  }
  auto datum = [&](int64 k) {
    return key_type == INT2OID ? Int16GetDatum(k) : key_type == INT4OID ? Int32GetDatum(k) : Int64GetDatum(k);
  };
  // Whether the probe sorts after an entry with key k (as compare_column, then `after`).
  auto past = [&](int64 k) {
    Datum d = datum(k);
    int entry_vs_bound = evaluate(b.less, econtext, d) ? -1 : evaluate(b.equal, econtext, d) ? 0 : 1;
    ResetExprContext(econtext);
    return entry_vs_bound < 0 ? !c.desc : entry_vs_bound > 0 ? c.desc : after;
  };
  int64 guess = integer_guess(v.value, getBaseType(v.type), lo, hi);
  int64 edge = c.desc ? hi : lo;  // the first key in the aggregate's order
  if (!past(edge)) {
    b = KeyProbe::Bound{BoundKind::Key, datum(edge)};  // before every non-NULL key
    after = false;
    return;
  }
  // The last key the probe is past, in the aggregate's order.
  int64 last;
  if (!c.desc)
    last = last_holding(lo, hi, guess, past);  // past holds from lo up to `last`
  else if (past(lo))
    last = lo;
  else  // past holds from hi down to `last`
    last = last_holding(lo, hi, guess, [&](int64 k) { return !past(k); }) + 1;
  b = KeyProbe::Bound{BoundKind::Key, datum(last)};
  after = true;
}

}  // namespace

KeyProbe::KeyProbe(const KeyLayout &layout, const std::vector<KeyValue> &values, bool after)
    : layout_(layout), bounds_(values.size()), after_(after) {
  Bound *bounds = bounds_.data();
  std::size_t n = values.size();
  const KeyValue *vals = values.data();
  pg_guard([&] {
    state_ = AllocSetContextCreate(CurrentMemoryContext, "aggr_ext probe", ALLOCSET_SMALL_SIZES);
    scratch_ = AllocSetContextCreate(CurrentMemoryContext, "aggr_ext probe scratch", ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(state_);
    for (std::size_t i = 0; i < n; ++i) {
      bounds[i] = make_bound(layout.column(i), vals[i]);
      if (bounds[i].kind == BoundKind::Sql && !econtext_) econtext_ = CreateStandaloneExprContext();
    }
    if (n > 0 && bounds[n - 1].kind == BoundKind::Sql)
      reduce_integer_bound(layout.column(n - 1), vals[n - 1], bounds[n - 1], after_, econtext_);
    MemoryContextSwitchTo(old);
  });
  plain_ = layout.plain_prefix(n) && std::all_of(bounds_.begin(), bounds_.end(), [](const Bound &b) {
             return b.kind == BoundKind::Key || b.kind == BoundKind::Null;
           });
}

KeyProbe::~KeyProbe() {
  if (scratch_) MemoryContextDelete(scratch_);
  if (state_) MemoryContextDelete(state_);
}

int KeyProbe::compare_column(std::size_t col, Datum value, bool isnull) const {
  const Bound &b = bounds_[col];
  if (b.kind == BoundKind::Null || b.kind == BoundKind::Key)
    return layout_.compare_values(col, b.value, b.kind == BoundKind::Null, value, isnull);
  const Column &c = layout_.column(col);
  if (isnull) return c.nulls_first ? 1 : -1;
  int entry_vs_bound;  // in the key type's ascending order
  if (b.kind == BoundKind::CrossType) {
    entry_vs_bound = sign(DatumGetInt32(FunctionCall2Coll(b.cross, c.collation, value, b.value)));
  } else {
    entry_vs_bound = evaluate(b.less, econtext_, value) ? -1 : evaluate(b.equal, econtext_, value) ? 0 : 1;
    ResetExprContext(econtext_);
  }
  return c.desc ? entry_vs_bound : -entry_vs_bound;
}

// A probe of plain columns by values of their own type (the common case:
// aggr_rank('lb', 1234)) compares without the guard; otherwise, or on a
// malformed entry, the guarded path below.
bool KeyProbe::compare_plain(std::string_view entry, int &result) const noexcept {
  if (!plain_) return false;
  std::size_t pos = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    Datum ed;
    bool en;
    if (!layout_.decode_plain(entry, pos, i, ed, en)) return false;
    const Bound &b = bounds_[i];
    int c = ApplySortComparator(b.value, b.kind == BoundKind::Null, ed, en,
                                const_cast<SortSupport>(&layout_.column(i).ssup));
    if (c != 0) {
      result = c;
      return true;
    }
  }
  result = after_ ? 1 : -1;
  return true;
}

int KeyProbe::compare_to(std::string_view entry) const {
  int result = 0;
  if (compare_plain(entry, result)) return result;
  std::size_t n = bounds_.size();
  const KeyLayout &layout = layout_;
  const KeyProbe *self = this;
  MemoryContext scratch = scratch_;
  pg_guard([&] {
    MemoryContext old = MemoryContextSwitchTo(scratch);
    std::size_t pos = 0;
    for (std::size_t i = 0; i < n && result == 0; ++i) {
      bool en;
      Datum ed = layout.decode(entry, pos, i, en);
      result = self->compare_column(i, ed, en);
    }
    MemoryContextSwitchTo(old);
    MemoryContextReset(scratch);
  });
  if (result != 0) return result;
  return after_ ? 1 : -1;
}

// ---------------------------------------------------------------- sums

std::string int128_to_string(aggr::int128 v) {
  if (v == 0) return "0";
  bool neg = v < 0;
  unsigned __int128 u = neg ? static_cast<unsigned __int128>(-(v + 1)) + 1 : static_cast<unsigned __int128>(v);
  std::string s;
  while (u) {
    s.push_back(static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  }
  if (neg) s.push_back('-');
  return std::string(s.rbegin(), s.rend());
}

namespace {
// Parses numeric_out text into an integer scaled by 10^scale.
bool parse_scaled(const char *text, int scale, aggr::int128 &out) {
  bool neg = *text == '-';
  if (neg || *text == '+') ++text;
  unsigned __int128 v = 0;
  const unsigned __int128 limit = (~static_cast<unsigned __int128>(0)) >> 2;
  int frac = -1;
  for (; *text; ++text) {
    if (*text == '.') {
      frac = 0;
      continue;
    }
    if (*text < '0' || *text > '9') return false;
    if (frac >= 0 && ++frac > scale) {
      if (*text != '0') return false;  // more decimals than the scale
      continue;
    }
    if (v > limit / 10) return false;
    v = v * 10 + static_cast<unsigned>(*text - '0');
  }
  for (int i = frac < 0 ? 0 : frac; i < scale; ++i) {
    if (v > limit / 10) return false;
    v *= 10;
  }
  out = neg ? -static_cast<aggr::int128>(v) : static_cast<aggr::int128>(v);
  return true;
}
}  // namespace

Sum SumSpec::from_datum(Datum value, bool isnull, Oid type) const {
  Sum s;
  if (isnull || kind == SumKind::None) return s;
  switch (type) {
    case INT2OID: s.exact = DatumGetInt16(value); break;
    case INT4OID: s.exact = DatumGetInt32(value); break;
    case INT8OID: s.exact = DatumGetInt64(value); break;
    case FLOAT4OID: s.approx = DatumGetFloat4(value); break;
    case FLOAT8OID: s.approx = DatumGetFloat8(value); break;
    case NUMERICOID: {
      char *text = DatumGetCString(DirectFunctionCall1(numeric_out, value));
      if (!parse_scaled(text, scale, s.exact))
        ereport(ERROR, (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                        errmsg("sum value %s cannot be summed exactly at scale %d", text, scale),
                        errhint("NaN, infinities and values beyond 38 digits are not supported in exact sums; use a float8 sum_value.")));
      break;
    }
    default:
      ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("unsupported sum type %s", format_type_be(type))));
  }
  return s;
}

Datum SumSpec::to_numeric(const Sum &s) const {
  if (kind == SumKind::Float) return DirectFunctionCall1(float8_numeric, Float8GetDatum(s.approx));
  std::string digits = int128_to_string(s.exact);
  if (kind == SumKind::Exact && scale > 0) {
    bool neg = digits[0] == '-';
    std::string mag = neg ? digits.substr(1) : digits;
    if (mag.size() <= static_cast<std::size_t>(scale)) mag.insert(0, static_cast<std::size_t>(scale) + 1 - mag.size(), '0');
    mag.insert(mag.size() - static_cast<std::size_t>(scale), ".");
    digits = (neg ? "-" : "") + mag;
  }
  return DirectFunctionCall3(numeric_in, CStringGetDatum(digits.c_str()), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

// ---------------------------------------------------------------- argument coercion

namespace {

// Refuses a conversion `converted` of `value` that SQL would not call equal
// to it (500.7 read as integer 501). Types SQL cannot compare pass.
void check_exact(Datum converted, Oid target, Datum value, Oid source, const char *what) {
  Oid key_type = getBaseType(target);
  Expr *equal = sql_comparison("=", key_type, get_typcollation(key_type), value, source);
  if (!equal) return;
  ExprContext *econtext = CreateStandaloneExprContext();
  bool same = evaluate(ExecInitExpr(equal, NULL), econtext, converted);
  FreeExprContext(econtext, true);
  if (same) return;
  Oid output;
  bool varlena;
  getTypeOutputInfo(source, &output, &varlena);
  ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                  errmsg("%s must be of type %s, not %s", what, format_type_be(target), format_type_be(source)),
                  errdetail("%s \"%s\" is not exactly a value of type %s.", format_type_be(source),
                            OidOutputFunctionCall(output, value), format_type_be(target)),
                  errhint("Pass a value of type %s.", format_type_be(target))));
}

}  // namespace

Datum coerce_value(Datum value, Oid source, Oid target, int32 typmod, const char *what) {
  if (source == target && typmod < 0) return value;
  // Text is read as an untyped literal is: drivers that leave a parameter's
  // type open get it typed text (params.cpp); JDBC's setString sends varchar.
  if (source == UNKNOWNOID || source == CSTRINGOID || source == TEXTOID || source == VARCHAROID) {
    Oid input, ioparam;
    getTypeInputInfo(target, &input, &ioparam);
    bool varlena = source == TEXTOID || source == VARCHAROID;
    char *string = varlena ? TextDatumGetCString(value) : DatumGetCString(value);
    return OidInputFunctionCall(input, string, ioparam, typmod);
  }
  int16 len;
  bool byval;
  get_typlenbyval(source, &len, &byval);
  Node *c = (Node *)makeConst(source, -1, InvalidOid, len, value, false, byval);
  Node *expr = coerce_to_target_type(NULL, c, source, target, typmod, COERCION_ASSIGNMENT, COERCE_IMPLICIT_CAST, -1);
  if (!expr)
    ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                    errmsg("%s must be of type %s, not %s", what, format_type_be(target), format_type_be(source)),
                    errhint("Cast the value to %s.", format_type_be(target))));
  expr = (Node *)expression_planner((Expr *)expr);
  Const *result = (Const *)evaluate_expr((Expr *)expr, target, typmod, InvalidOid);
  if (!result->constisnull) check_exact(result->constvalue, target, value, source, what);
  return result->constvalue;
}

Datum coerce_any_arg(FunctionCallInfo fcinfo, int argno, Oid target, int32 typmod, const char *what, bool *isnull) {
  *isnull = PG_ARGISNULL(argno);
  if (*isnull) return (Datum)0;
  Oid source = get_fn_expr_argtype(fcinfo->flinfo, argno);
  if (!OidIsValid(source)) ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not determine type of %s", what)));
  return coerce_value(PG_GETARG_DATUM(argno), source, target, typmod, what);
}

}  // namespace aggr::pg
