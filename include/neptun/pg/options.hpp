// What a PostgreSQL pool is told: where, how many connections, its limits and deadlines.
// The configuration sets these fields directly (one row per setting in src/app/config.cpp).
#pragma once

#include <chrono>
#include <string>

namespace neptun::pg {

struct options {
    std::string conninfo;  // any libpq URI or key=value string
    unsigned size = 4;     // connections in this pool
    unsigned pipeline_depth = 32;
    std::chrono::milliseconds wait{1000};
    std::chrono::milliseconds statement_timeout{4000};  // below the handler's deadline
    std::chrono::milliseconds connect_timeout{3000};
    std::chrono::milliseconds backoff_min{100};
    std::chrono::milliseconds backoff_max{5000};
    bool prepared = true;  // off: unnamed statements, for PgBouncer in transaction mode
    bool batch = true;     // coalesce batchable statements into one transaction
    unsigned max_batch = 64;
};

}  // namespace neptun::pg
