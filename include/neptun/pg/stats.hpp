// The PostgreSQL pool's gauges and counters, summed over every I/O thread's pool, and their
// Prometheus text (the admin port's /metrics puts it after Redis's).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "neptun/net/metrics.hpp"

namespace neptun::pg {

struct stats {
    std::atomic<std::int64_t> in_use{0};
    std::atomic<std::int64_t> idle{0};
    std::atomic<std::int64_t> waiting{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::uint64_t> batches{0};
    std::atomic<std::uint64_t> batched_statements{0};
    net::histogram latency;

    // neptun_pg_up (from readiness), the pool's gauges and counters, the statement latency.
    void render(std::string& out, bool up) const;
};

stats& global_stats();

}  // namespace neptun::pg
