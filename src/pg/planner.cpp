// The planner answers plain SQL from a matching aggregate.
//
// `SELECT count(*), sum(points), min(score), max(score) FROM scores WHERE
// score > $1 AND game = 3` over a table with a ready aggregate on `score`
// (namespaced by `game`, summing `points`) is planned as a Custom Scan that
// reads the aggregate in O(log n) with the query's snapshot, exactly as
// aggr_count / aggr_sum / aggr_min / aggr_max would. The normal plan is
// kept as the node's child: whenever the aggregate cannot answer exactly at
// execution (dropped, redefined, cleared, building, stale, row-level
// security, no table-level SELECT: a prepared statement outlives all of
// these), the node runs the child instead. Only what is proven equal to the
// SQL result is matched; anything else keeps the normal plan.
#include <cmath>
#include <cstdlib>

#include "catalog.hpp"
#include "owner_context.hpp"
#include "reads.hpp"

extern "C" {
#include "access/parallel.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/defrem.h"
#include "commands/explain.h"
#include "nodes/extensible.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/pathnode.h"
#include "optimizer/planner.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
}

namespace aggr::pg {
namespace {

bool enable_planner = true;  // GUC aggr_ext.enable_planner
create_upper_paths_hook_type previous_upper_hook = nullptr;

constexpr const char *kNodeName = "AggrExtScan";

// What each column of the scan tuple (one per aggregate call) is.
enum class Output : int { Count = 0, SumNumeric, SumInt8, Min, Max, PercentileAsc, PercentileDesc };

// The two things the node answers.
enum class Kind : int { Aggregates = 0, Rows };

// custom_private of the path and the plan. kOutputs: an Output per scan
// column (Kind::Aggregates) or the table column it holds (Kind::Rows).
enum PrivateField {
  kName = 0, kSource, kKeyExprs, kKeyFlags, kSumExpr, kNsExpr, kOps, kOutputs, kHasNs, kClauses, kKind, kReverse,
  kCheckAs, kPrivateFields
};

// ------------------------------------------------------------ matching (plain PostgreSQL code, may ereport)

// `expr` (Vars of range table entry 1, as the aggregate stores it) as it
// appears in a query over range table entry `relid`.
bool set_varno(Node *node, void *relid) {
  if (!node) return false;
  if (IsA(node, Var)) {
    Var *v = (Var *)node;
    if (v->varlevelsup == 0) v->varno = v->varnosyn = *(Index *)relid;
    return false;
  }
  return expression_tree_walker(node, (bool (*)())(void (*)())set_varno, relid);
}

Node *as_in_query(Expr *expr, Index relid) {
  if (!expr) return nullptr;
  Node *copy = (Node *)copyObjectImpl(expr);
  (void)set_varno(copy, &relid);
  return copy;
}

// A value the node evaluates at execution: no column of the table, nothing
// volatile, no subquery (PARAM_EXTERN, PARAM_EXEC of an outer query or an
// initplan, stable functions are fine).
bool is_execution_value(Node *expr) {
  return !contain_var_clause(expr) && !contain_volatile_functions(expr) && !contain_subplans(expr) &&
         !contain_agg_clause(expr) && !contain_window_function(expr);
}

// A column with a NOT NULL constraint of relation `relid` (range table entry `varno`).
bool is_not_null_column(Node *expr, Index varno, Oid relid) {
  if (!expr || !IsA(expr, Var)) return false;
  Var *v = (Var *)expr;
  if (v->varno != (int)varno || v->varlevelsup != 0 || v->varattno <= 0) return false;
  HeapTuple tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(v->varattno));
  if (!HeapTupleIsValid(tup)) return false;
  bool notnull = ((Form_pg_attribute)GETSTRUCT(tup))->attnotnull;
  ReleaseSysCache(tup);
  return notnull;
}

struct Match {
  Index relid = 0;
  Oid table = InvalidOid;
  Node *key = nullptr, *sum = nullptr, *ns = nullptr;  // the aggregate's expressions, as in the query
  Oid key_type = InvalidOid, key_collation = InvalidOid;
  Oid ns_type = InvalidOid, ns_collation = InvalidOid;
  bool exact_sum = false;
  List *ops = NIL, *values = NIL, *clauses = NIL;
  Node *ns_value = nullptr;
  List *aggrefs = NIL, *outputs = NIL;  // the scan tuple: Aggrefs, or Vars of the table (Kind::Rows)
  Kind kind = Kind::Aggregates;
  bool reverse = false;                       // Kind::Rows: in the reverse of aggregate order
  Node *offset = nullptr, *limit = nullptr;  // Kind::Rows: NULL when absent
  List *fractions = NIL;                      // percentile_disc's fractions, in output order
};

// The btree strategy of `key op value` (the key on the left), or 0 when op
// is not an operator of the key type's default btree family comparing it
// with value's type, under the key's collation.
int key_strategy(OpExpr *op, bool key_on_left, Oid key_type, Oid collation, Oid value_type) {
  Oid opclass = GetDefaultOpClass(key_type, BTREE_AM_OID);
  if (!OidIsValid(opclass) || op->inputcollid != collation) return 0;
  Oid family = get_opclass_family(opclass);
  if (!op_in_opfamily(op->opno, family)) return 0;
  int strategy;
  Oid left, right;
  get_op_opfamily_properties(op->opno, family, false, &strategy, &left, &right);
  if (key_on_left ? (left != key_type || right != value_type) : (right != key_type || left != value_type)) return 0;
  if (key_on_left || strategy == BTEqualStrategyNumber) return strategy;
  return BTMaxStrategyNumber + 1 - strategy;  // value < key is key > value
}

BoundOp bound_op(int strategy) {
  switch (strategy) {
    case BTLessStrategyNumber: return BoundOp::Lt;
    case BTLessEqualStrategyNumber: return BoundOp::Le;
    case BTEqualStrategyNumber: return BoundOp::Eq;
    case BTGreaterEqualStrategyNumber: return BoundOp::Ge;
    default: return BoundOp::Gt;
  }
}

// One WHERE condition: a bound on the leading key or the namespace equality.
bool match_clause(Match &m, RestrictInfo *ri) {
  if (ri->pseudoconstant) return false;
  Node *clause = (Node *)ri->clause;
  if (IsA(clause, NullTest)) {
    NullTest *nt = (NullTest *)clause;
    if (nt->argisrow || !equal(nt->arg, m.key)) return false;
    m.ops = lappend_int(m.ops, (int)(nt->nulltesttype == IS_NULL ? BoundOp::IsNull : BoundOp::IsNotNull));
    m.values = lappend(m.values, makeNullConst(INT4OID, -1, InvalidOid));
    m.clauses = lappend(m.clauses, clause);
    return true;
  }
  if (!IsA(clause, OpExpr) || list_length(((OpExpr *)clause)->args) != 2) return false;
  OpExpr *op = (OpExpr *)clause;
  Node *left = (Node *)linitial(op->args), *right = (Node *)lsecond(op->args);
  for (int side = 0; side < 2; ++side) {
    Node *mine = side == 0 ? left : right, *value = side == 0 ? right : left;
    if (equal(mine, m.key) && is_execution_value(value)) {
      int strategy = key_strategy(op, side == 0, m.key_type, m.key_collation, exprType(value));
      if (strategy == 0) return false;
      m.ops = lappend_int(m.ops, (int)bound_op(strategy));
      m.values = lappend(m.values, value);
      m.clauses = lappend(m.clauses, clause);
      return true;
    }
    // The namespace: equality with a value of its own type (no conversion that could fail).
    if (m.ns && !m.ns_value && equal(mine, m.ns) && is_execution_value(value) && exprType(value) == m.ns_type &&
        key_strategy(op, side == 0, m.ns_type, m.ns_collation, m.ns_type) == BTEqualStrategyNumber) {
      m.ns_value = value;
      m.clauses = lappend(m.clauses, clause);
      return true;
    }
  }
  return false;
}

// The default btree `<` / `>` of the key type, as min / max order by.
Output min_or_max(Aggref *a, const Match &m) {
  HeapTuple tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(a->aggfnoid));
  if (!HeapTupleIsValid(tup)) return Output::Count;
  Oid sortop = ((Form_pg_aggregate)GETSTRUCT(tup))->aggsortop;
  ReleaseSysCache(tup);
  TypeCacheEntry *tc = lookup_type_cache(m.key_type, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
  if (OidIsValid(sortop) && sortop == tc->lt_opr) return Output::Min;
  if (OidIsValid(sortop) && sortop == tc->gt_opr) return Output::Max;
  return Output::Count;
}

// percentile_disc(fraction) WITHIN GROUP (ORDER BY key [ASC | DESC]) of
// the leading key, NULLs skipped as ordered-set aggregates skip them.
bool match_percentile(Match &m, Aggref *a) {
  if (a->aggfnoid != F_PERCENTILE_DISC_FLOAT8_ANYELEMENT || a->agglevelsup != 0 || a->aggfilter ||
      a->aggkind != AGGKIND_ORDERED_SET || a->aggsplit != AGGSPLIT_SIMPLE || list_length(a->args) != 1 ||
      list_length(a->aggorder) != 1 || list_length(a->aggdirectargs) != 1)
    return false;
  Node *arg = (Node *)((TargetEntry *)linitial(a->args))->expr;
  Node *fraction = (Node *)linitial(a->aggdirectargs);
  if (!equal(arg, m.key) || a->inputcollid != m.key_collation || !is_execution_value(fraction)) return false;
  SortGroupClause *sgc = (SortGroupClause *)linitial(a->aggorder);
  TypeCacheEntry *tc = lookup_type_cache(m.key_type, TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
  if (sgc->sortop != tc->lt_opr && sgc->sortop != tc->gt_opr) return false;
  m.aggrefs = lappend(m.aggrefs, a);
  m.outputs = lappend_int(m.outputs, (int)(sgc->sortop == tc->lt_opr ? Output::PercentileAsc : Output::PercentileDesc));
  m.fractions = lappend(m.fractions, fraction);
  return true;
}

// One aggregate call of the query; false when the aggregate cannot answer it.
bool match_aggref(Match &m, Aggref *a) {
  if (a->aggkind == AGGKIND_ORDERED_SET) return match_percentile(m, a);
  if (a->agglevelsup != 0 || a->aggfilter || a->aggdistinct || a->aggorder || a->aggkind != AGGKIND_NORMAL ||
      a->aggvariadic || a->aggsplit != AGGSPLIT_SIMPLE)
    return false;
  Output out;
  Node *arg = list_length(a->args) == 1 ? (Node *)((TargetEntry *)linitial(a->args))->expr : nullptr;
  if (a->aggfnoid == F_COUNT_ && a->aggstar) {
    out = Output::Count;
  } else if (a->aggfnoid == F_COUNT_ANY && is_not_null_column(arg, m.relid, m.table)) {
    out = Output::Count;  // count(col) counts the rows whose col is not NULL: all of them
  } else if ((a->aggfnoid == F_SUM_INT2 || a->aggfnoid == F_SUM_INT4 || a->aggfnoid == F_SUM_INT8 ||
              a->aggfnoid == F_SUM_NUMERIC) &&
             m.exact_sum && equal(arg, m.sum) && is_not_null_column(arg, m.relid, m.table)) {
    // The aggregate counts a NULL sum_value as 0 where sum() skips it: only
    // a NOT NULL column makes them agree. Float sums are refused: sum()
    // adds in row order, the tree in another.
    out = a->aggtype == INT8OID ? Output::SumInt8 : Output::SumNumeric;
  } else if (arg && equal(arg, m.key) && a->inputcollid == m.key_collation &&
             (out = min_or_max(a, m)) != Output::Count) {
  } else {
    return false;
  }
  m.aggrefs = lappend(m.aggrefs, a);
  m.outputs = lappend_int(m.outputs, (int)out);
  return true;
}

// The query shapes the node answers: one plain table, and either
// aggregates only, or rows ORDER BY ... OFFSET / LIMIT.
bool answerable_shape(PlannerInfo *root, Kind kind) {
  Query *parse = root->parse;
  if (parse->commandType != CMD_SELECT || parse->groupClause || parse->groupingSets || parse->havingQual ||
      parse->distinctClause || parse->hasWindowFuncs || parse->hasTargetSRFs || parse->rowMarks ||
      parse->setOperations || root->append_rel_list || root->hasHavingQual)
    return false;
  if (kind == Kind::Aggregates) return parse->hasAggs;
  return !parse->hasAggs && parse->sortClause && parse->limitOption == LIMIT_OPTION_COUNT &&
         (parse->limitCount || parse->limitOffset);
}

RangeTblEntry *single_plain_table(PlannerInfo *root, RelOptInfo *input_rel) {
  if (input_rel->reloptkind != RELOPT_BASEREL || bms_membership(input_rel->relids) != BMS_SINGLETON ||
      IS_DUMMY_REL(input_rel) || bms_num_members(root->all_baserels) != 1)
    return nullptr;
  RangeTblEntry *rte = planner_rt_fetch(input_rel->relid, root);
  if (rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_RELATION || rte->tablesample ||
      (rte->inh && has_subclass(rte->relid)))
    return nullptr;
  HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(rte->relid));
  if (!HeapTupleIsValid(tup)) return nullptr;
  bool rls = ((Form_pg_class)GETSTRUCT(tup))->relrowsecurity;
  ReleaseSysCache(tup);
  return rls ? nullptr : rte;
}

// Whether the table has an ENABLE ALWAYS trigger named `name` (or, with
// prefix, whose name starts with it). Every aggregate is kept by its row
// trigger aggr_ext_<id> and its TRUNCATE trigger aggr_ext_<id>_truncate,
// both ENABLE ALWAYS: a table without one has no
// aggregate to read (a cheap test from the relcache, before any catalog
// lookup), and one whose trigger is disabled (ALTER TABLE ... DISABLE
// TRIGGER, or enabled for origin / replica sessions only) misses changes.
bool has_always_trigger(Oid relid, const char *name, bool prefix) {
  Relation rel = relation_open(relid, NoLock);  // the planner holds its lock
  bool found = false;
  std::size_t len = strlen(name);
  for (int i = 0; rel->trigdesc && i < rel->trigdesc->numtriggers && !found; ++i) {
    const Trigger *tg = &rel->trigdesc->triggers[i];
    found = tg->tgenabled == TRIGGER_FIRES_ALWAYS &&  // as aggr_create made it; otherwise some writes skip it
            (prefix ? strncmp(tg->tgname, name, len) == 0 : strcmp(tg->tgname, name) == 0);
  }
  relation_close(rel, NoLock);
  return found;
}

bool match_conditions(Match &m, RelOptInfo *input_rel) {
  ListCell *lc;
  foreach (lc, input_rel->baserestrictinfo)
    if (!match_clause(m, lfirst_node(RestrictInfo, lc))) return false;
  return !m.ns || m.ns_value;  // one tree per namespace: it must be named
}

bool match_query(Match &m, RelOptInfo *input_rel, RelOptInfo *grouped_rel) {
  if (!match_conditions(m, input_rel)) return false;
  ListCell *lc;
  List *found = pull_var_clause((Node *)grouped_rel->reltarget->exprs, PVC_INCLUDE_AGGREGATES);
  foreach (lc, found)
    if (!IsA(lfirst(lc), Aggref) || !match_aggref(m, (Aggref *)lfirst(lc))) return false;
  return m.aggrefs != NIL;
}

// ORDER BY the whole key, then (optionally) a prefix of the primary key,
// each column in the aggregate's direction (or each in the opposite one):
// the aggregate's entry order, or its reverse.
bool match_order(Match &m, PlannerInfo *root, const CompiledAggregate &agg) {
  std::size_t nkey = agg.key_columns();
  std::size_t n = static_cast<std::size_t>(list_length(root->parse->sortClause));
  if (n < nkey || n > agg.layout().size()) return false;
  bool forward = true, reverse = true;
  std::size_t i = 0;
  ListCell *lc;
  foreach (lc, root->parse->sortClause) {
    SortGroupClause *sgc = lfirst_node(SortGroupClause, lc);
    Node *expr = (Node *)get_sortgroupclause_expr(sgc, root->processed_tlist);
    if (i < nkey) {
      if (!equal(expr, as_in_query((Expr *)list_nth(agg.key_exprs(), (int)i), m.relid))) return false;
    } else {
      Var *v = IsA(expr, Var) ? (Var *)expr : nullptr;
      if (!v || v->varno != (int)m.relid || v->varlevelsup != 0 || v->varattno != agg.pk_attnums()[i - nkey])
        return false;
    }
    TypeCacheEntry *tc = lookup_type_cache(exprType(expr), TYPECACHE_LT_OPR | TYPECACHE_GT_OPR);
    if (sgc->sortop != tc->lt_opr && sgc->sortop != tc->gt_opr) return false;
    bool desc = sgc->sortop == tc->gt_opr;
    const Column &c = agg.layout().column(i);
    bool nulls_agree = i >= nkey || sgc->nulls_first == c.nulls_first;  // a primary key has no NULLs
    bool nulls_opposite = i >= nkey || sgc->nulls_first != c.nulls_first;
    forward = forward && desc == c.desc && nulls_agree;
    reverse = reverse && desc != c.desc && nulls_opposite;
    ++i;
  }
  m.reverse = !forward;
  return forward || reverse;
}

// The rows' output: any expressions of the table's columns (nothing
// volatile: the normal plan may evaluate them for rows OFFSET skips).
bool match_row_target(Match &m, PlannerInfo *root) {
  Node *target = (Node *)root->upper_targets[UPPERREL_FINAL]->exprs;
  if (contain_volatile_functions(target) || contain_subplans(target)) return false;
  List *vars = pull_var_clause(target, 0);
  ListCell *lc;
  foreach (lc, vars) {
    Var *v = (Var *)lfirst(lc);
    // No whole-row reference, no system column.
    if (v->varno != (int)m.relid || v->varlevelsup != 0 || v->varattno <= 0) return false;
    if (list_member_int(m.outputs, v->varattno)) continue;
    m.outputs = lappend_int(m.outputs, v->varattno);
    m.aggrefs = lappend(m.aggrefs, makeVar(v->varno, v->varattno, v->vartype, v->vartypmod, v->varcollid, 0));
  }
  return true;
}

bool match_rows_query(Match &m, PlannerInfo *root, RelOptInfo *base_rel, RelOptInfo *final_rel,
                      const CompiledAggregate &agg) {
  m.kind = Kind::Rows;
  if (!match_conditions(m, base_rel) || !match_order(m, root, agg) || !match_row_target(m, root)) return false;
  Query *parse = root->parse;
  for (Node *e : {parse->limitOffset, parse->limitCount})
    if (e && !is_execution_value(e)) return false;
  m.offset = parse->limitOffset;
  m.limit = parse->limitCount;
  return true;
}

// The expressions of a compiled aggregate as the query writes them.
void take_definition(Match &m, const CompiledAggregate &agg) {
  m.key = as_in_query((Expr *)linitial(agg.key_exprs()), m.relid);
  m.key_type = exprType(m.key);
  m.key_collation = exprCollation(m.key);
  m.sum = as_in_query(agg.sum_expr(), m.relid);
  m.exact_sum = agg.sum().kind == SumKind::Exact;
  m.ns = as_in_query(agg.ns_expr(), m.relid);
  if (m.ns) {
    m.ns_type = exprType(m.ns);
    m.ns_collation = exprCollation(m.ns);
  }
}

// A copy of the cheapest path of the grouped relation, to plan as the
// fallback: add_path frees the paths the custom path beats.
// Whether a path runs parallel workers (Gather / Gather Merge anywhere in
// it). A statement with one runs in parallel mode, where the node cannot
// read (it would need a new snapshot) and always answers by its child: the
// child must then be a serial plan, or the aggregate would never answer.
bool runs_workers(Path *path) {
  if (!path) return false;
  switch (nodeTag(path)) {
    case T_GatherPath:
    case T_GatherMergePath:
      return true;
    case T_AggPath: return runs_workers(((AggPath *)path)->subpath);
    case T_ProjectionPath: return runs_workers(((ProjectionPath *)path)->subpath);
    case T_LimitPath: return runs_workers(((LimitPath *)path)->subpath);
    case T_SortPath:
    case T_IncrementalSortPath: return runs_workers(((SortPath *)path)->subpath);
    case T_GroupPath: return runs_workers(((GroupPath *)path)->subpath);
    case T_MaterialPath: return runs_workers(((MaterialPath *)path)->subpath);
    case T_MinMaxAggPath: {
      ListCell *lc;
      foreach (lc, ((MinMaxAggPath *)path)->mmaggregates)
        if (runs_workers(((MinMaxAggInfo *)lfirst(lc))->path)) return true;
      return false;
    }
    default: return path->parallel_aware;
  }
}

// The cheapest serial path of a relation (nullptr: none).
Path *cheapest_serial(List *paths) {
  Path *best = nullptr;
  ListCell *lc;
  foreach (lc, paths) {
    Path *p = (Path *)lfirst(lc);
    if (!runs_workers(p) && (!best || p->total_cost < best->total_cost)) best = p;
  }
  return best;
}

// A copy of the cheapest serial path of the grouped relation, to plan as
// the fallback: add_path frees the paths the custom path beats.
Path *copy_of_best_path(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *grouped_rel, GroupPathExtraData *extra) {
  Path *best = cheapest_serial(grouped_rel->pathlist);
  std::size_t size = 0;
  if (best && IsA(best, LimitPath)) size = sizeof(LimitPath);
  if (best && IsA(best, AggPath)) size = sizeof(AggPath);
  if (best && IsA(best, MinMaxAggPath)) size = sizeof(MinMaxAggPath);
  if (best && IsA(best, ProjectionPath)) size = sizeof(ProjectionPath);
  if (size > 0) {
    Path *copy = (Path *)palloc(size);
    memcpy(copy, best, size);
    return copy;
  }
  if (!extra) return nullptr;  // final rows: no path of a kind known to copy
  // Whatever else the grouped relation holds: a plain aggregate over the
  // cheapest serial scan (a sequential scan when parallel paths beat every
  // serial one: add_path dropped those).
  Path *scan = cheapest_serial(input_rel->pathlist);
  if (!scan) scan = create_seqscan_path(root, input_rel, nullptr, 0);
  return (Path *)create_agg_path(root, grouped_rel, scan, grouped_rel->reltarget, AGG_PLAIN, AGGSPLIT_SIMPLE, NIL, NIL,
                                 &extra->agg_final_costs, 1);
}

extern const CustomPathMethods path_methods;

// The matched WHERE conditions as SQL, for EXPLAIN (deparsed now: the
// plan's range table may be flattened into an outer query's).
char *conditions_text(const Match &m) {
  if (!m.clauses) return pstrdup("");
  Node *all = list_length(m.clauses) == 1 ? (Node *)linitial(m.clauses) : (Node *)make_andclause(m.clauses);
  all = (Node *)copyObjectImpl(all);
  Index first = 1;
  (void)set_varno(all, &first);
  return deparse_expression(all, deparse_context_for(get_rel_name(m.table), m.table), false, false);
}

// O(log n) descents, one per bound: cheaper than any scan of the table;
// rows: then a primary key probe per row returned.
Cost custom_cost(RelOptInfo *base_rel, const Match &m, double rows_out) {
  double rows = std::max(base_rel->tuples, 1.0);
  Cost descents =
      cpu_tuple_cost + cpu_operator_cost * (2 + list_length(m.ops) + list_length(m.aggrefs)) * std::log2(rows + 1);
  if (m.kind == Kind::Aggregates) return descents;
  return descents + rows_out * (cpu_tuple_cost + cpu_index_tuple_cost + random_page_cost / 4);
}

void add_custom_path(PlannerInfo *root, RelOptInfo *base_rel, RelOptInfo *grouped_rel, GroupPathExtraData *extra,
                     const AggregateDef &def, const Match &m) {
  Path *fallback = copy_of_best_path(root, base_rel, grouped_rel, extra);
  if (!fallback) return;
  // A page returns as many rows as its normal plan (the Limit's estimate:
  // all of the range after OFFSET when there is no LIMIT), each a primary
  // key probe; an aggregate query one row.
  double rows_out = m.kind == Kind::Rows ? std::max(fallback->rows, 1.0) : 1;
  CustomPath *cp = makeNode(CustomPath);
  cp->path.pathtype = T_CustomScan;
  cp->path.parent = grouped_rel;
  // The final relation's paths carry the final target (its reltarget is empty).
  cp->path.pathtarget = m.kind == Kind::Rows ? root->upper_targets[UPPERREL_FINAL] : grouped_rel->reltarget;
  cp->path.param_info = nullptr;
  cp->path.parallel_aware = false;
  cp->path.parallel_safe = false;
  cp->path.parallel_workers = 0;
  cp->path.rows = rows_out;
  cp->path.startup_cost = cp->path.total_cost = custom_cost(base_rel, m, rows_out);
  cp->path.pathkeys = m.kind == Kind::Rows ? fallback->pathkeys : NIL;  // the order the query asked for
  cp->flags = 0;
  cp->custom_paths = list_make1(fallback);
  List *priv = NIL;
  priv = lappend(priv, makeString(pstrdup(def.name.c_str())));
  priv = lappend(priv, makeString(psprintf("%u", def.source)));
  priv = lappend(priv, makeString(pstrdup(def.key_exprs.c_str())));
  priv = lappend(priv, makeString(pstrdup(def.key_flags.c_str())));
  priv = lappend(priv, makeString(pstrdup(def.sum_expr.c_str())));
  priv = lappend(priv, makeString(pstrdup(def.ns_expr.c_str())));
  priv = lappend(priv, m.ops);
  priv = lappend(priv, m.outputs);
  priv = lappend(priv, makeInteger(m.ns_value ? 1 : 0));
  priv = lappend(priv, makeString(conditions_text(m)));
  priv = lappend(priv, makeInteger((int)m.kind));
  priv = lappend(priv, makeInteger(m.reverse ? 1 : 0));
  // The role the executor checks the table's privileges as: a view's owner
  // for a table read through the view (0: the current user).
  priv = lappend(priv, makeString(psprintf("%u", planner_rt_fetch(m.relid, root)->checkAsUser)));
  // Taken out by plan_custom_path (not kept in the plan's private list):
  priv = lappend(priv, m.aggrefs);
  List *exprs = list_copy(m.values);
  if (m.ns_value) exprs = lappend(exprs, m.ns_value);
  exprs = list_concat(exprs, m.fractions);  // Kind::Aggregates: fractions last
  if (m.kind == Kind::Rows) {  // offset and limit last
    exprs = lappend(exprs, m.offset ? m.offset : (Node *)makeNullConst(INT8OID, -1, InvalidOid));
    exprs = lappend(exprs, m.limit ? m.limit : (Node *)makeNullConst(INT8OID, -1, InvalidOid));
  }
  priv = lappend(priv, exprs);
  cp->custom_private = priv;
  cp->methods = &path_methods;
  add_path(grouped_rel, &cp->path);
}

// ------------------------------------------------------------ the hook (C++ side)

// The aggregate of the table that answers the query, if any, adds its path.
void consider_aggregates(PlannerInfo *root, Kind kind, RelOptInfo *input_rel, RelOptInfo *output_rel, void *extra) {
  RangeTblEntry *rte = nullptr;
  RelOptInfo *base_rel = nullptr;
  bool installed = false;
  pg_guard([&] {
    if (!answerable_shape(root, kind) || bms_membership(root->all_baserels) != BMS_SINGLETON) return;
    base_rel = kind == Kind::Aggregates ? input_rel : find_base_rel(root, bms_singleton_member(root->all_baserels));
    rte = single_plain_table(root, base_rel);
    installed = rte && has_always_trigger(rte->relid, "aggr_ext_", true) &&
                OidIsValid(get_extension_oid("aggr_ext", true)) &&
                OidIsValid(get_namespace_oid("aggr_internal", true));
  });
  if (!rte || !installed) return;
  Oid table = rte->relid;
  for (const AggregateDef &def : load_aggregates_of(table)) {
    if (def.state != "ready") continue;
    bool maintained = false;
    // Both of aggr_create's triggers: the row trigger sees INSERT / UPDATE /
    // DELETE, the statement trigger TRUNCATE; either one disabled misses writes.
    pg_guard([&] {
      maintained = has_always_trigger(table, psprintf("aggr_ext_%d", def.id), false) &&
                   has_always_trigger(table, psprintf("aggr_ext_%d_truncate", def.id), false);
    });
    if (!maintained) continue;
    Oid user = InvalidOid;
    pg_guard([&] { user = GetUserId(); });
    // Compiled as the table owner, as reads compile it (it folds the owner's functions).
    CompiledAggregate *agg = nullptr;
    if (user == table_owner(table))
      agg = &compiled_aggregate(def);
    else
      run_as_table_owner(table, [&] { agg = &compiled_aggregate(def); });
    if (agg->stale() || agg->unlogged()) continue;
    bool matched = false;
    pg_guard([&] {
      Match m;
      m.relid = base_rel->relid;
      m.table = table;
      take_definition(m, *agg);
      if (kind == Kind::Aggregates) {
        matched = match_query(m, base_rel, output_rel);
        if (matched) add_custom_path(root, base_rel, output_rel, static_cast<GroupPathExtraData *>(extra), def, m);
      } else {
        matched = match_rows_query(m, root, base_rel, output_rel, *agg);
        if (matched) add_custom_path(root, base_rel, output_rel, nullptr, def, m);
      }
    });
    if (matched) return;
  }
}

void upper_paths(PlannerInfo *root, UpperRelationKind stage, RelOptInfo *input_rel, RelOptInfo *output_rel,
                 void *extra) {
  if (previous_upper_hook) previous_upper_hook(root, stage, input_rel, output_rel, extra);
  if ((stage != UPPERREL_GROUP_AGG && stage != UPPERREL_FINAL) || !enable_planner || !extra) return;
  // A query planned inside a parallel query (a PARALLEL SAFE function's, in
  // a worker or the leader) keeps its normal plan: reading the catalog and
  // the trees takes snapshots a parallel operation may not take.
  if (IsInParallelMode()) return;
  ErrorReport report;
  bool failed = false;
  try {
    Kind kind = stage == UPPERREL_GROUP_AGG ? Kind::Aggregates : Kind::Rows;
    consider_aggregates(root, kind, input_rel, output_rel, extra);
  } catch (...) {
    report = capture_current_exception();
    failed = true;
  }
  if (failed) raise_report(report);
}

// ------------------------------------------------------------ plan

Plan *plan_custom_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path, List *tlist, List *clauses,
                       List *custom_plans) {
  CustomScan *cs = makeNode(CustomScan);
  List *priv = best_path->custom_private;
  List *aggrefs = (List *)list_nth(priv, kPrivateFields);
  List *exprs = (List *)list_nth(priv, kPrivateFields + 1);
  cs->scan.plan.targetlist = tlist;
  cs->scan.plan.qual = NIL;
  cs->scan.scanrelid = 0;
  cs->flags = best_path->flags;
  // A page answers in both directions when its normal plan does (a Limit over
  // a Sort or an index scan): a cursor declared without SCROLL then still
  // fetches backward, as PostgreSQL allows it over that plan.
  bool rows = static_cast<Kind>(intVal(list_nth(priv, kKind))) == Kind::Rows;
  if (rows && ExecSupportsBackwardScan((Plan *)linitial(custom_plans))) cs->flags |= CUSTOMPATH_SUPPORT_BACKWARD_SCAN;
  cs->custom_plans = custom_plans;
  cs->custom_exprs = exprs;
  cs->custom_private = list_copy_head(priv, kPrivateFields);
  List *scan_tlist = NIL;
  ListCell *lc;
  foreach (lc, aggrefs)
    scan_tlist = lappend(scan_tlist, makeTargetEntry((Expr *)copyObjectImpl(lfirst(lc)), list_length(scan_tlist) + 1,
                                                     nullptr, false));
  cs->custom_scan_tlist = scan_tlist;
  cs->custom_relids = bms_copy(root->all_baserels);
  cs->methods = nullptr;  // plan_path sets it (declared after)
  return &cs->scan.plan;
}

// ------------------------------------------------------------ execution

enum class Mode { Undecided, Answered, Done, Fallback };

struct ScanState {
  CustomScanState css;
  PlanState *child;
  List *value_states;  // ExprState per bound, then the namespace value (then offset, limit)
  Mode mode;
  Kind kind;
  Relation table;              // Kind::Rows: the source table,
  TupleTableSlot *table_slot;  // a slot of its rows,
  Tuplestorestate *rows;       // and the rows answered
  bool backward;               // the executor may fetch backward (EXEC_FLAG_BACKWARD)
  MemoryContext read_cxt;      // what one read allocates, freed by the next (a rescan's)
  bool used_aggregate;  // for EXPLAIN ANALYZE: answered from the aggregate at least once
  bool used_fallback;
};

Node *create_scan_state(CustomScan *cs);

void begin_scan(CustomScanState *node, EState *estate, int eflags) {
  auto *s = (ScanState *)node;
  CustomScan *cs = (CustomScan *)node->ss.ps.plan;
  s->child = ExecInitNode((Plan *)linitial(cs->custom_plans), estate, eflags);
  node->custom_ps = list_make1(s->child);
  // The node returns its own virtual tuples, or in fallback its child's
  // slot as is (a Sort's minimal tuple, a scan's buffer tuple): a parent
  // that compiled its expressions for a fixed virtual slot would read that
  // one's values without deforming it (a page in a subquery crashed).
  node->ss.ps.resultopsfixed = false;
  s->value_states = NIL;
  ListCell *lc;
  foreach (lc, cs->custom_exprs)
    s->value_states = lappend(s->value_states, ExecInitExpr((Expr *)lfirst(lc), &node->ss.ps));
  s->mode = Mode::Undecided;
  s->backward = (eflags & EXEC_FLAG_BACKWARD) != 0;
  s->read_cxt = AllocSetContextCreate(CurrentMemoryContext, "aggr_ext scan", ALLOCSET_DEFAULT_SIZES);
  s->kind = static_cast<Kind>(intVal(list_nth(cs->custom_private, kKind)));
  if (s->kind == Kind::Rows) {
    Oid source = static_cast<Oid>(strtoul(strVal(list_nth(cs->custom_private, kSource)), nullptr, 10));
    s->table = table_open(source, AccessShareLock);
    s->table_slot = MakeSingleTupleTableSlot(RelationGetDescr(s->table), &TTSOpsMinimalTuple);
  }
}

const char *private_text(CustomScan *cs, int field) { return strVal(list_nth(cs->custom_private, field)); }

PlannedAggregate planned_of(CustomScan *cs) {
  PlannedAggregate planned;
  planned.name = private_text(cs, kName);
  planned.source = static_cast<Oid>(std::strtoul(private_text(cs, kSource), nullptr, 10));
  planned.key_exprs = private_text(cs, kKeyExprs);
  planned.key_flags = private_text(cs, kKeyFlags);
  planned.sum_expr = private_text(cs, kSumExpr);
  planned.ns_expr = private_text(cs, kNsExpr);
  planned.check_as = static_cast<Oid>(std::strtoul(private_text(cs, kCheckAs), nullptr, 10));
  return planned;
}

// Values of the bounds and the namespace (and offset, limit), as the
// query's expressions compute them now, into q. pg-side.
constexpr int kMaxValues = 64;
int evaluate_values(ScanState *s, KeyValue *values) {
  ExprContext *econtext = s->css.ss.ps.ps_ExprContext;
  List *states = s->value_states;
  int nvalues = std::min(list_length(states), kMaxValues);
  ResetExprContext(econtext);
  for (int i = 0; i < nvalues; ++i) {
    ExprState *es = (ExprState *)list_nth(states, i);
    bool isnull = false;
    values[i].value = ExecEvalExprSwitchContext(es, econtext, &isnull);
    values[i].isnull = isnull;
    values[i].type = exprType((Node *)es->expr);
  }
  return nvalues;
}

// The bounds and namespace of the plan with their values; false when the
// values do not fit the plan (never, short of a corrupt plan).
bool range_query_of(CustomScan *cs, const KeyValue *values, int nvalues, int extra_values, RangeQuery &q) {
  List *ops = (List *)list_nth(cs->custom_private, kOps);
  q.has_ns = intVal(list_nth(cs->custom_private, kHasNs)) != 0;
  int nops = list_length(ops);
  if (nvalues != nops + (q.has_ns ? 1 : 0) + extra_values) return false;
  for (int i = 0; i < nops; ++i) q.bounds.push_back(QueryBound{static_cast<BoundOp>(list_nth_int(ops, i)), values[i]});
  if (q.has_ns) q.ns = values[nops];
  return true;
}

// C++: reads the rows into s->rows, or says to fall back.
bool answer_rows_into_store(ScanState *s) {
  CustomScan *cs = (CustomScan *)s->css.ss.ps.plan;
  PlannedAggregate planned = planned_of(cs);
  KeyValue values[kMaxValues];
  int nvalues = 0;
  pg_guard([&] { nvalues = evaluate_values(s, values); });
  RowsQuery q;
  if (nvalues < 2 || !range_query_of(cs, values, nvalues, 2, q.range)) return false;
  const KeyValue &offset = values[nvalues - 2], &limit = values[nvalues - 1];
  q.offset = offset.isnull ? 0 : DatumGetInt64(offset.value);
  q.limit = limit.isnull ? -1 : DatumGetInt64(limit.value);
  if (q.offset < 0 || (!limit.isnull && q.limit < 0)) return false;  // the normal plan raises SQL's error
  q.reverse = intVal(list_nth(cs->custom_private, kReverse)) != 0;
  EState *estate = s->css.ss.ps.state;
  Tuplestorestate *rows = nullptr;
  pg_guard([&] {
    MemoryContext old = MemoryContextSwitchTo(estate->es_query_cxt);
    rows = tuplestore_begin_heap(s->backward, false, work_mem);
    MemoryContextSwitchTo(old);
  });
  s->rows = rows;
  return answer_rows(planned, q, rows);
}

// C++: reads the aggregate into the scan slot, or says to fall back.
bool answer_into_slot(ScanState *s) {
  CustomScan *cs = (CustomScan *)s->css.ss.ps.plan;
  PlannedAggregate planned = planned_of(cs);
  List *outputs = (List *)list_nth(cs->custom_private, kOutputs);
  KeyValue values[kMaxValues];
  int nvalues = 0;
  pg_guard([&] { nvalues = evaluate_values(s, values); });
  RangeQuery q;
  ListCell *lc;
  int nfractions = 0;
  foreach (lc, outputs) {
    Output o = static_cast<Output>(lfirst_int(lc));
    nfractions += o == Output::PercentileAsc || o == Output::PercentileDesc;
  }
  if (!range_query_of(cs, values, nvalues, nfractions, q)) return false;
  const KeyValue *fraction = values + nvalues - nfractions;
  foreach (lc, outputs) {
    Output o = static_cast<Output>(lfirst_int(lc));
    q.want_sum |= o == Output::SumInt8 || o == Output::SumNumeric;
    q.want_min |= o == Output::Min;
    q.want_max |= o == Output::Max;
    if (o != Output::PercentileAsc && o != Output::PercentileDesc) continue;
    double f = fraction->isnull ? 0 : DatumGetFloat8(fraction->value);
    // Out of range: the normal plan raises SQL's error.
    if (!fraction->isnull && (std::isnan(f) || f < 0 || f > 1)) return false;
    q.percentiles.push_back(Percentile{f, fraction->isnull, o == Output::PercentileDesc});
    ++fraction;
  }
  RangeAnswer a;
  if (!answer_range(planned, q, a)) return false;
  TupleTableSlot *slot = s->css.ss.ss_ScanTupleSlot;
  pg_guard([&] {
    ExecClearTuple(slot);
    int i = 0;
    std::size_t k = 0;
    ListCell *oc;
    foreach (oc, outputs) {
      Output o = static_cast<Output>(lfirst_int(oc));
      bool isnull = false;
      Datum v = 0;
      switch (o) {
        case Output::Count: v = Int64GetDatum(static_cast<int64>(a.count)); break;
        case Output::SumNumeric: isnull = a.count == 0; v = a.sum; break;
        case Output::SumInt8:
          isnull = a.count == 0;
          v = isnull ? (Datum)0 : DirectFunctionCall1(numeric_int8, a.sum);
          break;
        case Output::Min: isnull = a.min_null; v = a.min; break;
        case Output::Max: isnull = a.max_null; v = a.max; break;
        case Output::PercentileAsc:
        case Output::PercentileDesc:
          isnull = a.percentile_null[k];
          v = a.percentile[k];
          ++k;
          break;
      }
      slot->tts_values[i] = v;
      slot->tts_isnull[i] = isnull;
      ++i;
    }
    ExecStoreVirtualTuple(slot);
  });
  return true;
}

// Decides on the first call after a (re)start: the aggregate or the child.
void decide(ScanState *s) {
  ErrorReport report;
  bool failed = false, answered = false;
  // The read allocates in the query's context otherwise, and a node
  // rescanned once per outer row (LATERAL, a correlated subquery) grew it
  // by each read until the query ended. The answer (the scan slot's values)
  // lives until the next read.
  MemoryContextReset(s->read_cxt);
  MemoryContext old = MemoryContextSwitchTo(s->read_cxt);
  try {
    // Planned outside a parallel query, run inside one (a PARALLEL SAFE
    // function's cached plan): the normal plan, as the hook would choose.
    // So too once aggr_ext.enable_planner is off: it reaches plans already
    // cached (prepared statements, PL/pgSQL, a pooled connection's).
    if (enable_planner && !IsInParallelMode()) answered = s->kind == Kind::Rows ? answer_rows_into_store(s) : answer_into_slot(s);
  } catch (...) {
    report = capture_current_exception();
    failed = true;
  }
  MemoryContextSwitchTo(old);
  if (failed) raise_report(report);
  s->mode = answered ? Mode::Answered : Mode::Fallback;
  (answered ? s->used_aggregate : s->used_fallback) = true;
}

// The next answered row in the executor's direction into the scan slot;
// false past either end.
bool next_row(ScanState *s) {
  bool forward = ScanDirectionIsForward(s->css.ss.ps.state->es_direction);
  if (!tuplestore_gettupleslot(s->rows, forward, false, s->table_slot)) return false;
  slot_getallattrs(s->table_slot);
  TupleTableSlot *scan = s->css.ss.ss_ScanTupleSlot;
  ExecClearTuple(scan);
  List *attnos = (List *)list_nth(((CustomScan *)s->css.ss.ps.plan)->custom_private, kOutputs);
  int j = 0;
  ListCell *lc;
  foreach (lc, attnos) {
    int att = lfirst_int(lc);
    scan->tts_values[j] = s->table_slot->tts_values[att - 1];
    scan->tts_isnull[j] = s->table_slot->tts_isnull[att - 1];
    ++j;
  }
  ExecStoreVirtualTuple(scan);
  return true;
}

TupleTableSlot *exec_scan(CustomScanState *node) {
  auto *s = (ScanState *)node;
  if (s->mode == Mode::Undecided) decide(s);
  if (s->mode == Mode::Fallback) return ExecProcNode(s->child);
  if (s->mode == Mode::Done) return ExecClearTuple(node->ss.ps.ps_ResultTupleSlot);
  if (s->kind == Kind::Rows) {
    // Past the end the store stays readable: a backward fetch returns the last row.
    if (!next_row(s)) return ExecClearTuple(node->ss.ps.ps_ResultTupleSlot);
  } else {
    s->mode = Mode::Done;
  }
  ProjectionInfo *proj = node->ss.ps.ps_ProjInfo;
  if (!proj) return node->ss.ss_ScanTupleSlot;
  ExprContext *econtext = node->ss.ps.ps_ExprContext;
  ResetExprContext(econtext);  // the previous row's projection (a page projects one per row), as ExecScan does
  econtext->ecxt_scantuple = node->ss.ss_ScanTupleSlot;
  return ExecProject(proj);
}

void forget_rows(ScanState *s) {
  if (s->rows) tuplestore_end(s->rows);
  s->rows = nullptr;
}

void end_scan(CustomScanState *node) {
  auto *s = (ScanState *)node;
  ExecEndNode(s->child);
  forget_rows(s);
  if (s->table_slot) ExecDropSingleTupleTableSlot(s->table_slot);
  if (s->table) table_close(s->table, AccessShareLock);
}

void rescan(CustomScanState *node) {
  auto *s = (ScanState *)node;
  // The same page again (a cursor's rewind, no parameter changed): keep the
  // first decision, and read the rows already answered as a Material node
  // would. Deciding anew could switch between the aggregate and the normal
  // plan (this transaction wrote or flushed since), whose orders of equal
  // keys may differ when the ORDER BY stops before the primary key.
  bool same_page = s->kind == Kind::Rows && !node->ss.ps.chgParam;
  if (same_page && s->mode == Mode::Answered && s->rows) {
    tuplestore_rescan(s->rows);
    return;
  }
  if (!same_page || s->mode != Mode::Fallback) {
    s->mode = Mode::Undecided;
    forget_rows(s);
  }
  if (node->ss.ps.chgParam) UpdateChangedParamSet(s->child, node->ss.ps.chgParam);
  if (!s->child->chgParam) ExecReScan(s->child);
}

void explain_scan(CustomScanState *node, List *ancestors, ExplainState *es) {
  auto *s = (ScanState *)node;
  CustomScan *cs = (CustomScan *)node->ss.ps.plan;
  ExplainPropertyText("Aggregate", private_text(cs, kName), es);
  const char *conditions = private_text(cs, kClauses);
  if (*conditions) ExplainPropertyText("Bounds", conditions, es);
  if (s->kind == Kind::Rows)
    ExplainPropertyText(
        "Order", intVal(list_nth(cs->custom_private, kReverse)) ? "reverse of the aggregate's" : "the aggregate's", es);
  if (es->analyze)
    ExplainPropertyText("Answered by", s->used_aggregate && s->used_fallback ? "aggregate and normal plan"
                                       : s->used_fallback                    ? "normal plan"
                                       : s->used_aggregate                   ? "aggregate"
                                                                             : "nothing yet",
                        es);
}

const CustomExecMethods exec_methods = {
    kNodeName, begin_scan, exec_scan, end_scan, rescan, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
    explain_scan};

const CustomScanMethods scan_methods = {kNodeName, create_scan_state};

Node *create_scan_state(CustomScan *cs) {
  auto *s = (ScanState *)newNode(sizeof(ScanState), T_CustomScanState);
  s->css.methods = &exec_methods;
  s->child = nullptr;
  s->value_states = NIL;
  s->mode = Mode::Undecided;
  s->kind = Kind::Aggregates;
  s->table = nullptr;
  s->table_slot = nullptr;
  s->rows = nullptr;
  s->backward = false;
  s->read_cxt = nullptr;
  s->used_aggregate = s->used_fallback = false;
  return (Node *)s;
}

Plan *plan_path(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path, List *tlist, List *clauses,
                List *custom_plans) {
  Plan *plan = plan_custom_path(root, rel, best_path, tlist, clauses, custom_plans);
  ((CustomScan *)plan)->methods = &scan_methods;
  return plan;
}

const CustomPathMethods path_methods = {kNodeName, plan_path, nullptr};

}  // namespace

void register_planner() {
  DefineCustomBoolVariable("aggr_ext.enable_planner",
                           "Lets the planner answer count / sum / min / max queries from a matching aggregate.",
                           "Off: every query runs its normal plan.", &enable_planner, true, PGC_USERSET, 0, nullptr,
                           nullptr, nullptr);
  RegisterCustomScanMethods(&scan_methods);
  previous_upper_hook = create_upper_paths_hook;
  create_upper_paths_hook = upper_paths;
}

}  // namespace aggr::pg
