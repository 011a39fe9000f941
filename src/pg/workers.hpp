// Dynamic background workers of the extension (job workers, the merger):
// launching one, and the session lock by which a live worker says it runs.
#pragma once
#include <string>

#include "guard.hpp"

namespace aggr::pg {

// Registers a worker of this library that runs `function(arg)`, with
// `extra` in bgw_extra. Guarded; false when no worker slot is free.
bool launch_worker_process(const std::string &name, const char *type, const char *function, Datum arg,
                           const void *extra = nullptr, std::size_t extra_len = 0);
// Whether another process holds `tag`: a live worker. Guarded.
bool held_by_live_worker(const LOCKTAG &tag);
// In a worker after it connected: takes `tag` for its whole session; false
// when another worker has it (this one then has nothing to do).
bool claim_for_session(const LOCKTAG &tag);
// Gives back a lock claim_for_session took.
void release_for_session(const LOCKTAG &tag);

}  // namespace aggr::pg
