#include "neptun/net/metrics.hpp"

#include "neptun/net/log.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>

namespace neptun::net {
namespace {

// Route names, registered at start-up: index 0 is "unmatched".
struct route_names {
    std::mutex lock;
    std::array<std::string, route_label::max> names{"unmatched"};
    std::atomic<std::size_t> count{1};
};

route_names& registered_routes() {
    static route_names r;
    return r;
}

}  // namespace

void append_number(std::string& out, double v) {
    char buf[40];
    // Counts print whole, however large (a %g would round a counter past 10^9).
    const bool whole = v == std::floor(v) && std::fabs(v) < 9e15;
    int n = std::snprintf(buf, sizeof buf, whole ? "%.0f" : "%.9g", v);
    out.append(buf, static_cast<std::size_t>(n));
}

void append_metric(std::string& out, std::string_view name, std::string_view help, double value,
                   std::string_view type) {
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

route_label route_label::named(std::string_view name) {
    auto& r = registered_routes();
    std::lock_guard guard(r.lock);
    auto n = r.count.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < n; ++i)
        if (r.names[i] == name) return route_label(i);
    if (n == max) {
        log::warn("route_label_dropped", {{"route", name}});
        return unmatched;
    }
    r.names[n] = std::string(name);
    r.count.store(n + 1, std::memory_order_release);
    return route_label(n);
}

std::string_view route_label::name() const {
    // A name, once written, never changes: read without the lock.
    return registered_routes().names[index_];
}

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

namespace {
std::size_t status_slot(unsigned status, unsigned first, unsigned slots) {
    return status >= first && status < first + slots ? status - first : slots;  // else "other"
}
}  // namespace

void metrics::request(route_label route, unsigned status, double seconds) {
    requests_[route.index()][status_slot(status, first_status, status_slots)].fetch_add(
        1, std::memory_order_relaxed);
    latency_[route.index()].observe(seconds);
}

std::uint64_t metrics::requests(route_label route, unsigned status) const {
    return requests_[route.index()][status_slot(status, first_status, status_slots)].load(
        std::memory_order_relaxed);
}

std::string metrics::render(bool ready) const {
    std::string out;
    out.reserve(16384);
    out += "# HELP neptun_http_requests_total HTTP requests answered, by route and status.\n";
    out += "# TYPE neptun_http_requests_total counter\n";
    const auto routes = registered_routes().count.load(std::memory_order_acquire);
    for (std::size_t r = 0; r < routes; ++r) {
        for (std::size_t s = 0; s <= status_slots; ++s) {
            auto v = requests_[r][s].load(std::memory_order_relaxed);
            if (v == 0) continue;
            out += "neptun_http_requests_total{route=\"";
            out += registered_routes().names[r];
            out += "\",status=\"";
            out += s < status_slots ? std::to_string(first_status + s) : std::string("other");
            out += "\"} ";
            out += std::to_string(v);
            out += '\n';
        }
    }
    out +=
        "# HELP neptun_http_request_duration_seconds Time from a request's header to its "
        "response written.\n";
    out += "# TYPE neptun_http_request_duration_seconds histogram\n";
    for (std::size_t r = 0; r < routes; ++r) {
        std::string labels = "route=\"" + registered_routes().names[r] + "\"";
        latency_[r].render(out, "neptun_http_request_duration_seconds", labels);
    }
    append_metric(out, "neptun_open_connections", "Open client connections on the API port.",
                  static_cast<double>(open_connections.load(std::memory_order_relaxed)), "gauge");
    append_metric(out, "neptun_connections_total", "Client connections accepted on the API port.",
                  static_cast<double>(connections_total.load(std::memory_order_relaxed)));
    append_metric(out, "neptun_connections_refused_total",
                  "Connections refused because the connection cap was reached.",
                  static_cast<double>(connections_refused.load(std::memory_order_relaxed)));
    append_metric(out, "neptun_deadline_closes_total",
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
    append_metric(out, "neptun_log_lines_dropped_total",
                  "Log lines dropped because the log queue was full (stderr too slow).",
                  static_cast<double>(log::dropped_lines()));
    append_metric(out, "neptun_framing_refusals_total",
                  "Requests refused with 400 for ambiguous or malformed framing.",
                  static_cast<double>(framing_refusals.load(std::memory_order_relaxed)));
    append_metric(out, "process_start_time_seconds", "Start time of the process since the epoch.",
                  process_start_time, "gauge");
    append_metric(out, "neptun_ready", "1 when /readyz answers 200.", ready ? 1 : 0, "gauge");

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
