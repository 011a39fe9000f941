#include "guard.hpp"

#include "../core/types.hpp"

namespace aggr::pg {

namespace {
// palloc that reports failure instead of raising an error: capture runs in a
// catch handler, out of which a longjmp must never go.
char *copy_text_no_error(const char *prefix, const char *text) noexcept {
  std::size_t a = strlen(prefix), b = strlen(text);
  char *out = static_cast<char *>(MemoryContextAllocExtended(CurrentMemoryContext, a + b + 1, MCXT_ALLOC_NO_OOM));
  if (!out) return nullptr;
  memcpy(out, prefix, a);
  memcpy(out + a, text, b + 1);
  return out;
}
char *copy_text_no_error(const std::string &s) noexcept { return s.empty() ? nullptr : copy_text_no_error("", s.c_str()); }

char out_of_memory_text[] = "out of memory in aggr_ext";
char *message_no_error(const char *prefix, const char *text) noexcept {
  char *m = copy_text_no_error(prefix, text);
  return m ? m : out_of_memory_text;
}

// Without the aggregate's name (corruption found outside a named walk).
constexpr const char *kRebuildHint =
    "Find the aggregate with SELECT * FROM aggr_verify(name) and rebuild it with SELECT aggr_rebuild(name).";
}  // namespace

UserError corruption_error(const std::string &aggregate, bool ready, const std::string &what) {
  std::string name = sql_literal(aggregate);
  return UserError(ERRCODE_DATA_CORRUPTED, "aggregate \"" + aggregate + "\" is corrupt: " + what,
                   ready ? "Rebuild it with SELECT aggr_rebuild(" + name + ")."
                         : "Refill it with SELECT aggr_clear(" + name + "); CALL aggr_backfill(" + name + ").");
}

void check_interrupts_in_walk() {
  if (!INTERRUPTS_PENDING_CONDITION() && !stack_is_too_deep()) return;  // the common case: no setjmp
  pg_guard([] {
    CHECK_FOR_INTERRUPTS();
    check_stack_depth();
  });
}

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
    r.message = message_no_error("", e.what());
    r.hint = copy_text_no_error(e.hint());
    r.detail = copy_text_no_error(e.detail());
  } catch (const std::bad_alloc &) {
    r.sqlstate = ERRCODE_OUT_OF_MEMORY;
    r.message = out_of_memory_text;
  } catch (const CorruptNode &e) {
    r.sqlstate = ERRCODE_DATA_CORRUPTED;
    r.message = message_no_error("aggregate index is corrupt: ", e.what());
    r.hint = copy_text_no_error("", kRebuildHint);
  } catch (const InvariantViolation &e) {
    r.sqlstate = ERRCODE_DATA_CORRUPTED;
    r.message = message_no_error("aggregate index is corrupt: ", e.what());
    r.hint = copy_text_no_error("", kRebuildHint);
  } catch (const std::invalid_argument &e) {
    r.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
    r.message = message_no_error("", e.what());
  } catch (const std::exception &e) {
    r.sqlstate = ERRCODE_INTERNAL_ERROR;
    r.message = message_no_error("aggr_ext internal error: ", e.what());
  } catch (...) {
    r.sqlstate = ERRCODE_INTERNAL_ERROR;
    r.message = message_no_error("", "aggr_ext internal error: unknown exception");
  }
  return r;
}

void raise_report(const ErrorReport &r) {
  if (r.pg) ReThrowError(r.pg);
  ereport(ERROR, (errcode(r.sqlstate), errmsg_internal("%s", r.message), r.hint ? errhint("%s", r.hint) : 0,
                  r.detail ? errdetail_internal("%s", r.detail) : 0));
  pg_unreachable();
}

namespace {
// Logs a captured error at LOG with everything PostgreSQL knows of it (as
// EmitErrorReport would): SQLSTATE, detail, hint, and `what` as context.
void log_report(const ErrorReport &r, const char *what) {
  if (r.pg) {
    ErrorData *e = r.pg;
    e->elevel = LOG;
    e->context = e->context ? psprintf("%s\n%s", e->context, what) : pstrdup(what);
    ThrowErrorData(e);  // below ERROR: emits and returns
    return;
  }
  ereport(LOG, (errcode(r.sqlstate), errmsg_internal("%s", r.message), r.hint ? errhint("%s", r.hint) : 0,
                r.detail ? errdetail_internal("%s", r.detail) : 0, errcontext("%s", what)));
}
}  // namespace

char *abort_with_report(const ErrorReport &report, const char *what) {
  // Plain data only from here: an error while logging is a worker's FATAL.
  log_report(report, what);
  const char *text = report.pg ? report.pg->message : report.message;
  char *message = MemoryContextStrdup(TopMemoryContext, text ? text : "unknown error");
  AbortCurrentTransaction();
  return message;
}

char *run_in_transaction(const char *what, const std::function<void()> &body) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  ErrorReport report;
  bool failed = false;
  try {
    body();
    pg_guard([] {
      PopActiveSnapshot();
      CommitTransactionCommand();
    });
  } catch (...) {
    report = capture_current_exception();
    failed = true;
  }
  return failed ? abort_with_report(report, what) : nullptr;
}

}  // namespace aggr::pg
