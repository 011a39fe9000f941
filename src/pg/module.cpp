// Module entry: one _PG_init that initializes each part.
#include "../core/types.hpp"
#include "catalog.hpp"
#include "jobs.hpp"
#include "maintenance.hpp"

namespace aggr::pg {
void register_parameter_typing();  // params.cpp
void register_planner();           // planner.cpp
}

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

void _PG_init(void) {
  aggr::pg::register_transaction_callbacks();
  aggr::pg::register_catalog_invalidation();
  aggr::pg::define_settings();
  aggr::pg::register_parameter_typing();
  aggr::pg::register_planner();
  aggr::interrupt_check = aggr::pg::check_interrupts_in_walk;
}
