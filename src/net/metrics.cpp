#include "neptun/net/metrics.hpp"

#include "neptun/net/log.hpp"

#include <chrono>
#include <cstdio>

namespace neptun::net {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(route_label::count_)> route_names{
    "project", "livez", "readyz", "metrics", "unmatched"};

std::size_t status_index(unsigned status) {
    for (std::size_t i = 0; i < metrics::statuses.size(); ++i)
        if (metrics::statuses[i] == status) return i;
    return metrics::statuses.size();  // "other"
}

void append_number(std::string& out, double v) {
    char buf[40];
    int n = std::snprintf(buf, sizeof buf, "%.9g", v);
    out.append(buf, static_cast<std::size_t>(n));
}

void counter(std::string& out, std::string_view name, std::string_view help, double value,
             std::string_view type = "counter") {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
    out += name;
    out += ' ';
    append_number(out, value);
    out += '\n';
}

}  // namespace

void histogram::observe(double seconds) {
    std::size_t i = 0;
    while (i < bounds.size() && seconds > bounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

void histogram::render(std::string& out, std::string_view name, std::string_view labels) const {
    std::uint64_t cumulative = 0;
    auto line = [&](std::string_view le, std::uint64_t v) {
        out += name;
        out += "_bucket{";
        if (!labels.empty()) {
            out += labels;
            out += ',';
        }
        out += "le=\"";
        out += le;
        out += "\"} ";
        out += std::to_string(v);
        out += '\n';
    };
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        cumulative += buckets_[i].load(std::memory_order_relaxed);
        char le[32];
        std::snprintf(le, sizeof le, "%g", bounds[i]);
        line(le, cumulative);
    }
    cumulative += buckets_[bounds.size()].load(std::memory_order_relaxed);
    line("+Inf", cumulative);
    std::string suffix;
    if (!labels.empty()) {
        suffix += '{';
        suffix += labels;
        suffix += '}';
    }
    out += name;
    out += "_sum";
    out += suffix;
    out += ' ';
    append_number(out, static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9);
    out += '\n';
    out += name;
    out += "_count";
    out += suffix;
    out += ' ';
    out += std::to_string(cumulative);
    out += '\n';
}

metrics::metrics() {
    using namespace std::chrono;
    process_start_time =
        duration_cast<duration<double>>(system_clock::now().time_since_epoch()).count();
}

void metrics::request(route_label route, unsigned status, double seconds) {
    auto r = static_cast<std::size_t>(route);
    requests_[r][status_index(status)].fetch_add(1, std::memory_order_relaxed);
    latency_[r].observe(seconds);
}

std::uint64_t metrics::requests(route_label route, unsigned status) const {
    return requests_[static_cast<std::size_t>(route)][status_index(status)].load(
        std::memory_order_relaxed);
}

std::string metrics::render(bool ready, bool redis_up, bool pg_up) const {
    std::string out;
    out.reserve(16384);
    out += "# HELP neptun_http_requests_total HTTP requests answered, by route and status.\n";
    out += "# TYPE neptun_http_requests_total counter\n";
    for (std::size_t r = 0; r < route_count; ++r) {
        for (std::size_t s = 0; s <= statuses.size(); ++s) {
            auto v = requests_[r][s].load(std::memory_order_relaxed);
            if (v == 0) continue;
            out += "neptun_http_requests_total{route=\"";
            out += route_names[r];
            out += "\",status=\"";
            out += s < statuses.size() ? std::to_string(statuses[s]) : std::string("other");
            out += "\"} ";
            out += std::to_string(v);
            out += '\n';
        }
    }
    out +=
        "# HELP neptun_http_request_duration_seconds Time from a request's header to its "
        "response written.\n";
    out += "# TYPE neptun_http_request_duration_seconds histogram\n";
    for (std::size_t r = 0; r < route_count; ++r) {
        std::string labels = "route=\"" + std::string(route_names[r]) + "\"";
        latency_[r].render(out, "neptun_http_request_duration_seconds", labels);
    }
    counter(out, "neptun_open_connections", "Open client connections on the API port.",
            static_cast<double>(open_connections.load(std::memory_order_relaxed)), "gauge");
    counter(out, "neptun_connections_total", "Client connections accepted on the API port.",
            static_cast<double>(connections_total.load(std::memory_order_relaxed)));
    counter(out, "neptun_connections_refused_total",
            "Connections refused because the connection cap was reached.",
            static_cast<double>(connections_refused.load(std::memory_order_relaxed)));
    counter(out, "neptun_deadline_closes_total",
            "Connections closed because a read, write or idle deadline passed.",
            static_cast<double>(deadline_closes.load(std::memory_order_relaxed)));
    out +=
        "# HELP neptun_connection_memory_bound_bytes Memory one connection may hold at most "
        "(active: a request in progress; idle: between requests).\n"
        "# TYPE neptun_connection_memory_bound_bytes gauge\n";
    out += "neptun_connection_memory_bound_bytes{state=\"active\"} " +
           std::to_string(memory_bound_active.load(std::memory_order_relaxed)) + "\n";
    out += "neptun_connection_memory_bound_bytes{state=\"idle\"} " +
           std::to_string(memory_bound_idle.load(std::memory_order_relaxed)) + "\n";
    counter(out, "neptun_log_lines_dropped_total",
            "Log lines dropped because the log queue was full (stderr too slow).",
            static_cast<double>(log::dropped_lines()));
    counter(out, "neptun_framing_refusals_total",
            "Requests refused with 400 for ambiguous or malformed framing.",
            static_cast<double>(framing_refusals.load(std::memory_order_relaxed)));
    counter(out, "process_start_time_seconds", "Start time of the process since the epoch.",
            process_start_time, "gauge");
    counter(out, "neptun_ready", "1 when /readyz answers 200.", ready ? 1 : 0, "gauge");

    counter(out, "neptun_redis_up", "1 when every Redis connection is up.", redis_up ? 1 : 0,
            "gauge");
    counter(out, "neptun_redis_commands_total", "Redis commands sent.",
            static_cast<double>(redis_commands.load(std::memory_order_relaxed)));
    counter(out, "neptun_redis_errors_total",
            "Redis commands that failed (down, timeout, error reply).",
            static_cast<double>(redis_errors.load(std::memory_order_relaxed)));
    counter(out, "neptun_redis_reconnects_total", "Redis connections re-established.",
            static_cast<double>(redis_reconnects.load(std::memory_order_relaxed)));
    counter(out, "neptun_redis_timeouts_total",
            "Redis lookups answered 503 at their deadline (min of handler and Redis timeout).",
            static_cast<double>(redis_timeouts.load(std::memory_order_relaxed)));
    counter(out, "neptun_redis_late_replies_total",
            "Redis replies read after their caller had given up (dropped, connection kept).",
            static_cast<double>(redis_late_replies.load(std::memory_order_relaxed)));
    counter(out, "neptun_redis_health_timeouts_total",
            "Redis connections dropped because the health-check PING went unanswered.",
            static_cast<double>(redis_health_timeouts.load(std::memory_order_relaxed)));
    counter(out, "neptun_redis_failovers_total",
            "Sentinel +switch-master messages for our master (each I/O thread counts its own).",
            static_cast<double>(redis_failovers.load(std::memory_order_relaxed)));
    out += "# HELP neptun_redis_command_duration_seconds Redis command round trips.\n";
    out += "# TYPE neptun_redis_command_duration_seconds histogram\n";
    redis_latency.render(out, "neptun_redis_command_duration_seconds", "");

    counter(out, "neptun_pg_up", "1 when every PostgreSQL connection is up.", pg_up ? 1 : 0,
            "gauge");
    out += "# HELP neptun_pg_connections PostgreSQL pool connections by state.\n";
    out += "# TYPE neptun_pg_connections gauge\n";
    out += "neptun_pg_connections{state=\"in_use\"} " +
           std::to_string(pg_in_use.load(std::memory_order_relaxed)) + "\n";
    out += "neptun_pg_connections{state=\"idle\"} " +
           std::to_string(pg_idle.load(std::memory_order_relaxed)) + "\n";
    counter(out, "neptun_pg_waiting", "Requests waiting for a pool connection.",
            static_cast<double>(pg_waiting.load(std::memory_order_relaxed)), "gauge");
    counter(out, "neptun_pg_errors_total",
            "PostgreSQL statements that failed (down, timeout, pool wait, error).",
            static_cast<double>(pg_errors.load(std::memory_order_relaxed)));
    counter(out, "neptun_pg_reconnects_total", "PostgreSQL connections re-established.",
            static_cast<double>(pg_reconnects.load(std::memory_order_relaxed)));
    counter(out, "neptun_pg_batches_total", "Update batches committed as one transaction.",
            static_cast<double>(pg_batches.load(std::memory_order_relaxed)));
    counter(out, "neptun_pg_batched_statements_total", "Updates committed inside batches.",
            static_cast<double>(pg_batched_statements.load(std::memory_order_relaxed)));
    out += "# HELP neptun_pg_statement_duration_seconds PostgreSQL statement round trips.\n";
    out += "# TYPE neptun_pg_statement_duration_seconds histogram\n";
    pg_latency.render(out, "neptun_pg_statement_duration_seconds", "");
    return out;
}

metrics& global_metrics() {
    static metrics m;
    return m;
}

bool readiness::ready() const {
    if (draining()) return false;
    for (unsigned c = 0; c < component_count; ++c)
        if (!up(static_cast<component>(c))) return false;
    return true;
}

std::string readiness::describe() const {
    if (ready()) return R"({"status":"ready"})";
    std::string out = R"({"status":"not ready","draining":)";
    out += draining() ? "true" : "false";
    out += R"(,"down":[)";
    bool first = true;
    constexpr std::array<std::string_view, component_count> names{"redis", "postgres"};
    for (unsigned c = 0; c < component_count; ++c) {
        if (up(static_cast<component>(c))) continue;
        if (!first) out += ',';
        first = false;
        out += '"';
        out += names[c];
        out += '"';
    }
    out += "]}";
    return out;
}

readiness& global_readiness() {
    static readiness r;
    return r;
}

}  // namespace neptun::net
