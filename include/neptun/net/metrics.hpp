// Process-wide metrics and readiness: every layer reports into them, the admin listener
// renders them (Prometheus text for /metrics, a verdict for /readyz). Counters are relaxed
// atomics: no lock on the request path.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace neptun::net {

// A latency histogram in seconds with fixed buckets.
class histogram {
  public:
    static constexpr std::array<double, 14> bounds{
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0};
    void observe(double seconds);
    // Appends the _bucket/_sum/_count lines for `name` with extra labels (e.g. route="x").
    void render(std::string& out, std::string_view name, std::string_view labels) const;
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

  private:
    std::array<std::atomic<std::uint64_t>, bounds.size() + 1> buckets_{};
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_ns_{0};
};

// Labels of the request counters: the routes of both listeners, and "unmatched".
enum class route_label : unsigned { project, livez, readyz, metrics, unmatched, count_ };

struct metrics {
    static constexpr std::array<unsigned, 15> statuses{100, 200, 400, 401, 403, 404, 405, 406,
                                                       408, 413, 415, 431, 500, 501, 503};

    metrics();
    void request(route_label route, unsigned status, double seconds);
    std::uint64_t requests(route_label route, unsigned status) const;

    double process_start_time = 0;
    std::atomic<std::int64_t> open_connections{0};
    std::atomic<std::uint64_t> connections_total{0};
    std::atomic<std::uint64_t> connections_refused{0};
    // connection_memory_bound() of the running limits, for operators and the deploy check.
    std::atomic<std::int64_t> memory_bound_active{0};
    std::atomic<std::int64_t> memory_bound_idle{0};
    std::atomic<std::uint64_t> deadline_closes{0};
    std::atomic<std::uint64_t> framing_refusals{0};

    std::atomic<std::uint64_t> redis_commands{0};
    std::atomic<std::uint64_t> redis_errors{0};
    std::atomic<std::uint64_t> redis_reconnects{0};
    std::atomic<std::uint64_t> redis_timeouts{0};
    std::atomic<std::uint64_t> redis_late_replies{0};
    std::atomic<std::uint64_t> redis_health_timeouts{0};
    std::atomic<std::uint64_t> redis_failovers{0};
    histogram redis_latency;

    std::atomic<std::int64_t> pg_in_use{0};
    std::atomic<std::int64_t> pg_idle{0};
    std::atomic<std::int64_t> pg_waiting{0};
    std::atomic<std::uint64_t> pg_errors{0};
    std::atomic<std::uint64_t> pg_reconnects{0};
    std::atomic<std::uint64_t> pg_batches{0};
    std::atomic<std::uint64_t> pg_batched_statements{0};
    histogram pg_latency;

    std::string render(bool ready, bool redis_up, bool pg_up) const;

  private:
    static constexpr std::size_t route_count = static_cast<std::size_t>(route_label::count_);
    std::array<std::array<std::atomic<std::uint64_t>, statuses.size() + 1>, route_count>
        requests_{};
    std::array<histogram, route_count> latency_{};
};

metrics& global_metrics();

// Readiness: the server is ready when it is not draining and no dependency reports down.
// Each store connection that is down holds one "down" mark on its component.
class readiness {
  public:
    enum component : unsigned { redis = 0, postgres = 1, component_count };

    void mark_down(component c) { down_[c].fetch_add(1, std::memory_order_relaxed); }
    void mark_up(component c) { down_[c].fetch_sub(1, std::memory_order_relaxed); }
    bool up(component c) const { return down_[c].load(std::memory_order_relaxed) <= 0; }
    void start_draining() { draining_.store(true, std::memory_order_relaxed); }
    bool draining() const { return draining_.load(std::memory_order_relaxed); }
    bool ready() const;
    // {"status":"ready"} or {"status":"not ready","draining":..,"down":[..]}
    std::string describe() const;

  private:
    std::array<std::atomic<int>, component_count> down_{};
    std::atomic<bool> draining_{false};
};

readiness& global_readiness();

}  // namespace neptun::net
