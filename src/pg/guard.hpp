// The C++ / PostgreSQL boundary.
//
// pg_guard(f): runs PostgreSQL code; an ereport(ERROR) inside becomes a C++
// PgError instead of a longjmp through C++ frames. f must hold no C++
// object with a destructor (plain data and PostgreSQL calls only).
//
// AGGR_FUNCTION(name): defines an fmgr entry point whose body runs in C++;
// any exception is turned into ereport only after every C++ object of the
// body is gone.
#pragma once
#include <exception>
#include <functional>
#include <new>
#include <stdexcept>
#include <string>

#include "../core/types.hpp"
#include "pg.hpp"

namespace aggr::pg {

// An error raised by PostgreSQL, carried across C++ frames.
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData *data) : data_(data) {}
  ErrorData *data() const { return data_; }
  const char *what() const noexcept override { return data_ && data_->message ? data_->message : "postgres error"; }

 private:
  ErrorData *data_;  // palloc'd in the caller's memory context
};

// An error the binding raises itself, with a SQLSTATE and optional hint.
class UserError : public std::exception {
 public:
  UserError(int sqlstate, std::string message, std::string hint = {}, std::string detail = {})
      : sqlstate_(sqlstate), message_(std::move(message)), hint_(std::move(hint)), detail_(std::move(detail)) {}
  int sqlstate() const { return sqlstate_; }
  const char *what() const noexcept override { return message_.c_str(); }
  const std::string &hint() const { return hint_; }
  const std::string &detail() const { return detail_; }

 private:
  int sqlstate_;
  std::string message_, hint_, detail_;
};

template <typename F>
void pg_guard(F &&f) {
  MemoryContext cxt = CurrentMemoryContext;
  ErrorData *volatile edata = nullptr;
  std::exception_ptr cpp_error;  // a C++ exception must not leave PG_TRY
  PG_TRY();
  {
    try {
      f();
    } catch (...) {
      cpp_error = std::current_exception();
    }
  }
  PG_CATCH();
  {
    MemoryContextSwitchTo(cxt);
    edata = CopyErrorData();
    FlushErrorState();
  }
  PG_END_TRY();
  if (cpp_error) std::rethrow_exception(cpp_error);
  if (edata) throw PgError(edata);
}

// Corruption found in the trees of `aggregate`, as users see it: SQLSTATE
// XX001 naming the aggregate, with how to rebuild it (a rebuild needs a
// ready aggregate; otherwise it is cleared and filled again).
UserError corruption_error(const std::string &aggregate, bool ready, const std::string &what);

// Runs f, a walk of one aggregate's trees, and raises the corruption it
// finds (a CorruptNode from the core, or an XX001 without a hint from the
// key decoder) again naming that aggregate.
template <typename F>
auto naming_corruption(const std::string &aggregate, bool ready, F &&f) -> decltype(f()) {
  try {
    return f();
  } catch (const CorruptNode &e) {
    throw corruption_error(aggregate, ready, e.what());
  } catch (const PgError &e) {
    if (e.data()->sqlerrcode != ERRCODE_DATA_CORRUPTED || e.data()->hint) throw;
    throw corruption_error(aggregate, ready, e.data()->message ? e.data()->message : "");
  }
}

// The core's per-node interrupt hook (aggr::interrupt_check): query cancel,
// statement_timeout and pg_terminate_backend reach long walks, as a PgError.
void check_interrupts_in_walk();

// Plain-data description of a caught exception, safe to keep on a frame
// that ereport will longjmp out of.
struct ErrorReport {
  ErrorData *pg = nullptr;
  int sqlstate = 0;
  char *message = nullptr;
  char *hint = nullptr;
  char *detail = nullptr;
};

// Call inside catch (...): describes the in-flight exception in palloc'd data.
// Never raises a PostgreSQL error (that would longjmp out of the catch
// handler): allocations that fail leave a fixed text instead.
ErrorReport capture_current_exception() noexcept;

// `value` as an SQL string literal, for hints that suggest SQL: quoted as
// quote_literal does ('it''s'; E'...' when it holds a backslash), so a name
// copied from a message is data, never more SQL. Pure C++: no palloc.
std::string sql_literal(const std::string &value);

// Background workers. Runs `body` in its own transaction (with a snapshot)
// and commits it; returns nullptr when it committed. On any error (in the
// body or at commit) nothing is committed: the error is logged in full
// (SQLSTATE, detail, hint, context: `what`), the transaction aborted, and
// the error's message returned (in TopMemoryContext).
char *run_in_transaction(const char *what, const std::function<void()> &body);
// After a catch block that captured `report` (outside pg_guard): logs it in
// full and aborts the transaction; returns the message (in TopMemoryContext).
char *abort_with_report(const ErrorReport &report, const char *what);
[[noreturn]] void raise_report(const ErrorReport &report);

}  // namespace aggr::pg

#define AGGR_FUNCTION(name)                                            \
  static Datum name##_body(FunctionCallInfo fcinfo);                   \
  extern "C" {                                                         \
  PG_FUNCTION_INFO_V1(name);                                           \
  Datum name(PG_FUNCTION_ARGS) {                                       \
    aggr::pg::ErrorReport report;                                      \
    bool failed = false;                                               \
    Datum result = 0;                                                  \
    try {                                                              \
      result = name##_body(fcinfo);                                    \
    } catch (...) {                                                    \
      report = aggr::pg::capture_current_exception();                  \
      failed = true;                                                   \
    }                                                                  \
    if (failed) aggr::pg::raise_report(report);                        \
    return result;                                                     \
  }                                                                    \
  }                                                                    \
  static Datum name##_body(FunctionCallInfo fcinfo)
