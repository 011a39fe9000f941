#include "guard.hpp"

#include "../core/types.hpp"

namespace aggr::pg {

namespace {
char *copy_text(const std::string &s) { return s.empty() ? nullptr : pstrdup(s.c_str()); }
}  // namespace

std::string sql_literal(const std::string &value) {
  std::string out;
  if (value.find('\\') != std::string::npos) out.push_back('E');
  out.push_back('\'');
  for (char c : value) {
    if (c == '\'' || c == '\\') out.push_back(c);
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

ErrorReport capture_current_exception() noexcept {
  ErrorReport r;
  try {
    throw;
  } catch (const PgError &e) {
    r.pg = e.data();
  } catch (const UserError &e) {
    r.sqlstate = e.sqlstate();
    r.message = pstrdup(e.what());
    r.hint = copy_text(e.hint());
    r.detail = copy_text(e.detail());
  } catch (const std::bad_alloc &) {
    r.sqlstate = ERRCODE_OUT_OF_MEMORY;
    r.message = pstrdup("out of memory in aggr_ext");
  } catch (const CorruptNode &e) {
    r.sqlstate = ERRCODE_DATA_CORRUPTED;
    r.message = psprintf("aggregate index is corrupt: %s", e.what());
    r.hint = pstrdup("Rebuild it with CALL aggr_backfill(name).");
  } catch (const InvariantViolation &e) {
    r.sqlstate = ERRCODE_DATA_CORRUPTED;
    r.message = psprintf("aggregate index is corrupt: %s", e.what());
    r.hint = pstrdup("Rebuild it with CALL aggr_backfill(name).");
  } catch (const std::invalid_argument &e) {
    r.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
    r.message = pstrdup(e.what());
  } catch (const std::exception &e) {
    r.sqlstate = ERRCODE_INTERNAL_ERROR;
    r.message = psprintf("aggr_ext internal error: %s", e.what());
  } catch (...) {
    r.sqlstate = ERRCODE_INTERNAL_ERROR;
    r.message = pstrdup("aggr_ext internal error: unknown exception");
  }
  return r;
}

void raise_report(const ErrorReport &r) {
  if (r.pg) ReThrowError(r.pg);
  ereport(ERROR, (errcode(r.sqlstate), errmsg_internal("%s", r.message), r.hint ? errhint("%s", r.hint) : 0,
                  r.detail ? errdetail_internal("%s", r.detail) : 0));
  pg_unreachable();
}

char *abort_after_exception() {
  ErrorReport report = capture_current_exception();
  const char *text = report.pg ? report.pg->message : report.message;
  char *message = MemoryContextStrdup(TopMemoryContext, text ? text : "unknown error");
  AbortCurrentTransaction();
  return message;
}

char *run_in_transaction(const std::function<void()> &body) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  try {
    body();
  } catch (...) {
    return abort_after_exception();
  }
  PopActiveSnapshot();
  CommitTransactionCommand();
  return nullptr;
}

}  // namespace aggr::pg
