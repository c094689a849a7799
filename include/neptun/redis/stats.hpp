// The Redis client's counters, summed over every I/O thread's client, and their Prometheus
// text (the admin port's /metrics puts it after the HTTP layer's).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "neptun/net/metrics.hpp"

namespace neptun::redis {

struct stats {
    std::atomic<std::uint64_t> commands{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::uint64_t> timeouts{0};
    std::atomic<std::uint64_t> late_replies{0};
    std::atomic<std::uint64_t> health_timeouts{0};
    std::atomic<std::uint64_t> failovers{0};
    net::histogram latency;

    // neptun_redis_up (from readiness), the counters and the command latency histogram.
    void render(std::string& out, bool up) const;
};

stats& global_stats();

}  // namespace neptun::redis
