#include "workers.hpp"

#include <cstring>

extern "C" {
#include "postmaster/bgworker.h"
}

namespace aggr::pg {

bool launch_worker_process(const std::string &name, const char *type, const char *function, Datum arg,
                           const void *extra, std::size_t extra_len) {
  bool launched = false;
  pg_guard([&] {
    BackgroundWorker bgw;
    memset(&bgw, 0, sizeof bgw);
    snprintf(bgw.bgw_name, BGW_MAXLEN, "%s", name.c_str());
    snprintf(bgw.bgw_type, BGW_MAXLEN, "%s", type);
    bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
    bgw.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(bgw.bgw_library_name, BGW_MAXLEN, "aggr_ext");
    snprintf(bgw.bgw_function_name, BGW_MAXLEN, "%s", function);
    bgw.bgw_main_arg = arg;
    if (extra) memcpy(bgw.bgw_extra, extra, std::min<std::size_t>(extra_len, BGW_EXTRALEN));
    BackgroundWorkerHandle *handle;
    launched = RegisterDynamicBackgroundWorker(&bgw, &handle);
  });
  return launched;
}

bool held_by_live_worker(const LOCKTAG &tag) {
  bool held = false;
  pg_guard([&] {
    LOCKTAG probe = tag;
    held = LockAcquire(&probe, ShareLock, false, true) == LOCKACQUIRE_NOT_AVAIL;
    if (!held) LockRelease(&probe, ShareLock, false);
  });
  return held;
}

bool claim_for_session(const LOCKTAG &tag) {
  StartTransactionCommand();
  LOCKTAG claim = tag;
  bool mine = LockAcquire(&claim, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL;
  CommitTransactionCommand();
  return mine;
}

void release_for_session(const LOCKTAG &tag) {
  LOCKTAG claim = tag;
  (void)LockRelease(&claim, ExclusiveLock, true);
}

}  // namespace aggr::pg
