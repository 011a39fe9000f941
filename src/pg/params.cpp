// Bound parameters whose type the client leaves open ($1 sent as "unknown",
// as node-postgres, pgx, lib/pq, psycopg 3 for str and PQexecParams do):
// PostgreSQL cannot type a parameter passed to a "any" argument and fails
// with 42P18 "could not determine data type of parameter". After parse
// analysis, such parameters of this extension's functions are typed text,
// the type an untyped literal there already behaves as: the function reads
// the text as the key's / namespace's type, and NULL means unbounded.
// Needs the library loaded before the statement is parsed
// (session_preload_libraries; see the README's Installation).
#include "guard.hpp"

extern "C" {
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "parser/parse_param.h"
}

namespace aggr::pg {
namespace {
post_parse_analyze_hook_type previous_hook = nullptr;
ParseParamRefHook variable_paramref_hook = nullptr;  // parse_param.c's, for variable parameters

// parse_param.c's state for variable parameters (PostgreSQL 15).
struct VarParamState {
  Oid **paramTypes;
  int *numParams;
};

struct Walk {
  VarParamState *state;
};

// A C function of this library (whatever schema the extension is in).
bool is_extension_function(Oid funcid) {
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
  if (!HeapTupleIsValid(tup)) return false;
  bool ours = false;
  if (((Form_pg_proc)GETSTRUCT(tup))->prolang == ClanguageId) {  // probin: MODULE_PATHNAME as the install script wrote it
    bool isnull;
    Datum bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);
    ours = !isnull && strcmp(TextDatumGetCString(bin), "$libdir/aggr_ext") == 0;
  }
  ReleaseSysCache(tup);
  return ours;
}

// expression_tree_walker's callback type is an old-style bool (*)().
using Walker = bool (*)();
template <typename F>
Walker as_walker(F f) {
  return reinterpret_cast<Walker>(reinterpret_cast<void (*)()>(f));
}

// Types text an untyped parameter `p` (passed to a "any" argument).
void type_text(Param *p, Walk &w) {
  if (p->paramkind != PARAM_EXTERN || p->paramtype != UNKNOWNOID) return;
  if (p->paramid < 1 || p->paramid > *w.state->numParams) return;
  Oid &declared = (*w.state->paramTypes)[p->paramid - 1];
  if (declared != UNKNOWNOID && declared != InvalidOid) return;
  declared = TEXTOID;
  p->paramtype = TEXTOID;
  p->paramcollid = DEFAULT_COLLATION_OID;
}

// Whether `arg` is, or is a ROW(...) holding, an untyped parameter: the
// forms a key, bound, id or namespace argument takes (a multi-column key
// or primary key is ROW($1, $2)).
bool has_untyped_param(Node *arg) {
  if (IsA(arg, Param)) return ((Param *)arg)->paramkind == PARAM_EXTERN && ((Param *)arg)->paramtype == UNKNOWNOID;
  if (!IsA(arg, RowExpr)) return false;
  ListCell *lc;
  foreach (lc, ((RowExpr *)arg)->args)
    if (IsA(lfirst(lc), Param) && has_untyped_param((Node *)lfirst(lc))) return true;
  return false;
}

// Types the untyped parameters passed straight to a "any" argument, or as
// fields of a ROW(...) passed to one.
void type_untyped_params(FuncExpr *f, Walk &w) {
  Oid *argtypes = nullptr;
  int nargs = 0;
  bool found = false;
  ListCell *lc;
  int i = 0;
  foreach (lc, f->args) {
    Node *arg = (Node *)lfirst(lc);
    ++i;
    // Named arguments are still in call order here (the planner reorders
    // them): a named one is the argnumber-th declared argument.
    if (IsA(arg, NamedArgExpr)) {
      i = ((NamedArgExpr *)arg)->argnumber + 1;
      arg = (Node *)((NamedArgExpr *)arg)->arg;
    }
    if (!has_untyped_param(arg)) continue;
    if (!found) {
      if (!is_extension_function(f->funcid)) return;
      (void)get_func_signature(f->funcid, &argtypes, &nargs);
      found = true;
    }
    if (i > nargs || argtypes[i - 1] != ANYOID) continue;
    if (IsA(arg, Param)) {
      type_text((Param *)arg, w);
      continue;
    }
    ListCell *field;
    foreach (field, ((RowExpr *)arg)->args)
      if (IsA(lfirst(field), Param)) type_text((Param *)lfirst(field), w);
  }
}

bool walk(Node *node, void *context) {
  if (!node) return false;
  Walk &w = *static_cast<Walk *>(context);
  if (IsA(node, Query)) return query_tree_walker((Query *)node, as_walker(walk), context, 0);
  if (IsA(node, FuncExpr)) type_untyped_params((FuncExpr *)node, w);
  return expression_tree_walker(node, as_walker(walk), context);
}

// Every other reference to a parameter typed above ($1 passed twice, or
// also to pg_typeof) must carry the same type, or execution refuses the
// plan ("type of parameter 1 (text) does not match ..."). A reference still
// unknown has a declared type only if type_untyped_params set it: parse
// analysis has already refused any other mismatch.
bool sync_param_types(Node *node, void *context) {
  if (!node) return false;
  Walk &w = *static_cast<Walk *>(context);
  if (IsA(node, Query)) return query_tree_walker((Query *)node, as_walker(sync_param_types), context, 0);
  if (IsA(node, Param)) {
    Param *p = (Param *)node;
    if (p->paramkind == PARAM_EXTERN && p->paramtype == UNKNOWNOID && p->paramid >= 1 &&
        p->paramid <= *w.state->numParams) {
      Oid declared = (*w.state->paramTypes)[p->paramid - 1];
      if (declared != UNKNOWNOID && declared != InvalidOid) {
        p->paramtype = declared;
        p->paramcollid = get_typcollation(declared);
      }
    }
    return false;
  }
  return expression_tree_walker(node, as_walker(sync_param_types), context);
}

// The statement a utility command analyzed with the caller's parameters
// (EXPLAIN, DECLARE CURSOR as psycopg's server-side cursors send it, CREATE
// TABLE AS), or the query itself.
Query *analyzed_statement(Query *query) {
  while (query && query->commandType == CMD_UTILITY && query->utilityStmt) {
    Node *inner = nullptr;
    if (IsA(query->utilityStmt, ExplainStmt)) inner = ((ExplainStmt *)query->utilityStmt)->query;
    else if (IsA(query->utilityStmt, DeclareCursorStmt)) inner = ((DeclareCursorStmt *)query->utilityStmt)->query;
    else if (IsA(query->utilityStmt, CreateTableAsStmt)) inner = ((CreateTableAsStmt *)query->utilityStmt)->query;
    query = inner && IsA(inner, Query) ? (Query *)inner : nullptr;
  }
  return query;
}

void post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate) {
  if (previous_hook) previous_hook(pstate, query, jstate);
  if (!pstate || pstate->p_paramref_hook != variable_paramref_hook || !pstate->p_ref_hook_state) return;
  auto *state = static_cast<VarParamState *>(pstate->p_ref_hook_state);
  bool untyped = false;
  for (int i = 0; i < *state->numParams && !untyped; ++i)
    untyped = (*state->paramTypes)[i] == UNKNOWNOID || (*state->paramTypes)[i] == InvalidOid;
  query = analyzed_statement(query);
  if (!untyped || !query) return;
  Walk w{state};
  (void)query_tree_walker(query, as_walker(walk), &w, 0);
  (void)query_tree_walker(query, as_walker(sync_param_types), &w, 0);
}
}  // namespace

void register_parameter_typing() {
  // parse_param.c's hook for variable parameters is static: learn its
  // address from a throwaway parse state, to recognize that mode later.
  ParseState *probe = make_parsestate(NULL);
  Oid *types = nullptr;
  int n = 0;
  setup_parse_variable_parameters(probe, &types, &n);
  variable_paramref_hook = probe->p_paramref_hook;
  free_parsestate(probe);
  previous_hook = post_parse_analyze_hook;
  post_parse_analyze_hook = post_parse_analyze;
}

}  // namespace aggr::pg
