// The HTTP layer's metrics and the process's readiness, with the pieces every layer renders
// its own stats with (a histogram, a sample line). The admin listener puts the layers'
// texts together for /metrics. Counters are relaxed atomics: no lock on the request path.
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

// Appends one Prometheus sample with its HELP and TYPE lines: every layer renders its own
// stats with it (net here, redis/stats.hpp, pg/stats.hpp, the session cache).
void append_metric(std::string& out, std::string_view name, std::string_view help, double value,
                   std::string_view type = "counter");
void append_number(std::string& out, double v);
// The same for a counter or gauge of a layer's stats.
template <typename T>
void append_metric(std::string& out, std::string_view name, std::string_view help,
                   const std::atomic<T>& value, std::string_view type = "counter") {
    append_metric(out, name, help, static_cast<double>(value.load(std::memory_order_relaxed)),
                  type);
}

// A route's name in the request metrics. The layer that owns a route names it (the router
// does, when it is built); net itself knows only "unmatched". Naming is thread-safe and
// happens at start-up; the request path only copies the small index.
class route_label {
  public:
    static constexpr std::size_t max = 16;  // names beyond it are counted as "unmatched"
    static const route_label unmatched;

    constexpr route_label() = default;
    static route_label named(std::string_view name);
    std::string_view name() const;
    std::size_t index() const { return index_; }
    friend bool operator==(route_label, route_label) = default;

  private:
    constexpr explicit route_label(std::size_t i) : index_(i) {}
    std::size_t index_ = 0;
};
inline constexpr route_label route_label::unmatched{};

// The HTTP layer's own counters. Statuses are counted by their code (100-599), so a new
// status needs no edit here.
struct metrics {
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

    // The HTTP and connection samples, then process_start_time_seconds and neptun_ready.
    std::string render(bool ready) const;

  private:
    static constexpr unsigned first_status = 100, status_slots = 500;  // 100..599, then other
    std::array<std::array<std::atomic<std::uint64_t>, status_slots + 1>, route_label::max>
        requests_{};
    std::array<histogram, route_label::max> latency_{};
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
