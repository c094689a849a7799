#include "neptun/redis/stats.hpp"

namespace neptun::redis {

void stats::render(std::string& out, bool up) const {
    net::append_metric(out, "neptun_redis_up", "1 when every Redis connection is up.", up ? 1 : 0,
                       "gauge");
    net::append_metric(out, "neptun_redis_commands_total", "Redis commands sent.", commands);
    net::append_metric(out, "neptun_redis_errors_total",
                       "Redis commands that failed (down, timeout, error reply).", errors);
    net::append_metric(out, "neptun_redis_reconnects_total", "Redis connections re-established.",
                       reconnects);
    net::append_metric(
        out, "neptun_redis_timeouts_total",
        "Redis lookups answered 503 at their deadline (min of handler and Redis timeout).",
        timeouts);
    net::append_metric(
        out, "neptun_redis_late_replies_total",
        "Redis replies read after their caller had given up (dropped, connection kept).",
        late_replies);
    net::append_metric(out, "neptun_redis_health_timeouts_total",
                       "Redis connections dropped because the health-check PING went unanswered.",
                       health_timeouts);
    net::append_metric(
        out, "neptun_redis_failovers_total",
        "Sentinel +switch-master messages for our master (each I/O thread counts its own).",
        failovers);
    out += "# HELP neptun_redis_command_duration_seconds Redis command round trips.\n";
    out += "# TYPE neptun_redis_command_duration_seconds histogram\n";
    latency.render(out, "neptun_redis_command_duration_seconds", "");
}

stats& global_stats() {
    static stats s;
    return s;
}

}  // namespace neptun::redis
