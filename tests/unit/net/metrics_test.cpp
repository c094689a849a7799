// Prometheus text for /metrics and the /readyz verdict.
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

#include "neptun/net/metrics.hpp"
#include "neptun/pg/stats.hpp"
#include "neptun/redis/stats.hpp"

namespace {

using neptun::net::histogram;
using neptun::net::metrics;
using neptun::net::readiness;
using neptun::net::route_label;

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// The value on the line that starts with `prefix` (e.g. "process_start_time_seconds ").
std::string value_after(std::string_view text, std::string_view prefix) {
    std::size_t at = 0;
    while (at < text.size()) {
        auto end = text.find('\n', at);
        auto line = text.substr(at, end - at);
        if (line.starts_with(prefix)) return std::string(line.substr(prefix.size()));
        if (end == std::string_view::npos) break;
        at = end + 1;
    }
    return {};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(net_metrics)

BOOST_AUTO_TEST_CASE(empty_histogram_renders_zeroes) {
    histogram h;
    std::string out;
    h.render(out, "t", "");
    BOOST_TEST(out ==
               "t_bucket{le=\"0.0001\"} 0\n"
               "t_bucket{le=\"0.00025\"} 0\n"
               "t_bucket{le=\"0.0005\"} 0\n"
               "t_bucket{le=\"0.001\"} 0\n"
               "t_bucket{le=\"0.0025\"} 0\n"
               "t_bucket{le=\"0.005\"} 0\n"
               "t_bucket{le=\"0.01\"} 0\n"
               "t_bucket{le=\"0.025\"} 0\n"
               "t_bucket{le=\"0.05\"} 0\n"
               "t_bucket{le=\"0.1\"} 0\n"
               "t_bucket{le=\"0.25\"} 0\n"
               "t_bucket{le=\"0.5\"} 0\n"
               "t_bucket{le=\"1\"} 0\n"
               "t_bucket{le=\"5\"} 0\n"
               "t_bucket{le=\"+Inf\"} 0\n"
               "t_sum 0\n"
               "t_count 0\n");
    BOOST_TEST(h.count() == 0u);
}

BOOST_AUTO_TEST_CASE(histogram_buckets_are_cumulative_and_inf_is_the_count) {
    histogram h;
    h.observe(0.00005);  // below the first bound
    h.observe(0.0001);   // exactly on a bound: `le` includes it
    h.observe(0.001);
    h.observe(0.0011);  // just past a bound
    h.observe(10);      // past the last bound: only +Inf
    std::string out;
    h.render(out, "t", "route=\"x\"");
    BOOST_TEST(out ==
               "t_bucket{route=\"x\",le=\"0.0001\"} 2\n"
               "t_bucket{route=\"x\",le=\"0.00025\"} 2\n"
               "t_bucket{route=\"x\",le=\"0.0005\"} 2\n"
               "t_bucket{route=\"x\",le=\"0.001\"} 3\n"
               "t_bucket{route=\"x\",le=\"0.0025\"} 4\n"
               "t_bucket{route=\"x\",le=\"0.005\"} 4\n"
               "t_bucket{route=\"x\",le=\"0.01\"} 4\n"
               "t_bucket{route=\"x\",le=\"0.025\"} 4\n"
               "t_bucket{route=\"x\",le=\"0.05\"} 4\n"
               "t_bucket{route=\"x\",le=\"0.1\"} 4\n"
               "t_bucket{route=\"x\",le=\"0.25\"} 4\n"
               "t_bucket{route=\"x\",le=\"0.5\"} 4\n"
               "t_bucket{route=\"x\",le=\"1\"} 4\n"
               "t_bucket{route=\"x\",le=\"5\"} 4\n"
               "t_bucket{route=\"x\",le=\"+Inf\"} 5\n"
               "t_sum{route=\"x\"} 10.00225\n"
               "t_count{route=\"x\"} 5\n");
    BOOST_TEST(h.count() == 5u);
}

BOOST_AUTO_TEST_CASE(render_counts_requests_by_route_and_status) {
    metrics m;
    m.request(route_label::named("project"), 200, 0.001);
    BOOST_TEST(m.requests(route_label::named("project"), 200) == 1u);
    BOOST_TEST(m.requests(route_label::named("project"), 404) == 0u);
    BOOST_TEST(m.requests(route_label::named("livez"), 200) == 0u);

    auto text = m.render(true);
    BOOST_TEST_INFO("metrics:\n" << text);
    BOOST_TEST(contains(text, "# TYPE neptun_http_requests_total counter\n"));
    BOOST_TEST(
        contains(text, "\nneptun_http_requests_total{route=\"project\",status=\"200\"} 1\n"));
    // Zero counters are left out.
    BOOST_TEST(!contains(text, "neptun_http_requests_total{route=\"project\",status=\"404\"}"));
    BOOST_TEST(!contains(text, "neptun_http_requests_total{route=\"livez\""));
    BOOST_TEST(contains(
        text,
        "\nneptun_http_request_duration_seconds_bucket{route=\"project\",le=\"0.0005\"} 0\n"));
    BOOST_TEST(contains(
        text, "\nneptun_http_request_duration_seconds_bucket{route=\"project\",le=\"0.001\"} 1\n"));
    BOOST_TEST(contains(
        text, "\nneptun_http_request_duration_seconds_bucket{route=\"project\",le=\"+Inf\"} 1\n"));
    BOOST_TEST(
        contains(text, "\nneptun_http_request_duration_seconds_count{route=\"project\"} 1\n"));
    BOOST_TEST(contains(text, "\nneptun_http_request_duration_seconds_count{route=\"livez\"} 0\n"));
    BOOST_TEST(contains(text, "# TYPE process_start_time_seconds gauge\n"));
    BOOST_TEST(contains(text, "\nneptun_ready 1\n"));
    BOOST_TEST(text.back() == '\n');
}

BOOST_AUTO_TEST_CASE(process_start_time_is_seconds_since_the_epoch) {
    metrics m;
    auto text = m.render(true);
    auto value = value_after(text, "process_start_time_seconds ");
    BOOST_TEST_REQUIRE(!value.empty());
    double seconds = std::stod(value);
    BOOST_TEST(seconds > 1.7e9);  // after 2023
    BOOST_TEST(seconds < 1e11);
}

BOOST_AUTO_TEST_CASE(every_status_is_counted_by_its_code) {
    metrics m;
    // Statuses net never heard of (the use case's 304, 412, 428) need no list here.
    for (unsigned status : {304u, 412u, 428u, 418u, 418u, 599u})
        m.request(route_label::unmatched, status, 0.01);
    BOOST_TEST(m.requests(route_label::unmatched, 418) == 2u);
    BOOST_TEST(m.requests(route_label::unmatched, 412) == 1u);
    BOOST_TEST(m.requests(route_label::unmatched, 200) == 0u);
    auto text = m.render(true);
    BOOST_TEST_INFO("metrics:\n" << text);
    for (auto line : {"\nneptun_http_requests_total{route=\"unmatched\",status=\"304\"} 1\n",
                      "\nneptun_http_requests_total{route=\"unmatched\",status=\"412\"} 1\n",
                      "\nneptun_http_requests_total{route=\"unmatched\",status=\"428\"} 1\n",
                      "\nneptun_http_requests_total{route=\"unmatched\",status=\"418\"} 2\n",
                      "\nneptun_http_requests_total{route=\"unmatched\",status=\"599\"} 1\n"})
        BOOST_TEST(contains(text, line));
    // Outside 100-599 (Beast sends none) is "other".
    m.request(route_label::unmatched, 700, 0.01);
    BOOST_TEST(contains(m.render(true),
                        "\nneptun_http_requests_total{route=\"unmatched\",status=\"other\"} 1\n"));
}

BOOST_AUTO_TEST_CASE(route_labels_are_named_once_by_the_layer_that_owns_the_route) {
    auto a = route_label::named("project");
    auto b = route_label::named("project");
    BOOST_TEST((a == b));
    BOOST_TEST(a.name() == "project");
    BOOST_TEST(!(a == route_label::unmatched));
    BOOST_TEST(route_label::unmatched.name() == "unmatched");
    BOOST_TEST(route_label().index() == 0u);
}

BOOST_AUTO_TEST_CASE(redis_and_postgres_render_their_own_stats) {
    neptun::redis::stats r;
    r.commands = 7;
    std::string out;
    r.render(out, false);
    BOOST_TEST_INFO("metrics:\n" << out);
    BOOST_TEST(out.starts_with("# HELP neptun_redis_up "));
    BOOST_TEST(contains(out, "\nneptun_redis_up 0\n"));
    BOOST_TEST(contains(out, "\nneptun_redis_commands_total 7\n"));
    BOOST_TEST(contains(out, "\nneptun_redis_command_duration_seconds_count 0\n"));
    neptun::pg::stats p;
    p.in_use = 2;
    p.batches = 5;
    std::string pout;
    p.render(pout, true);
    BOOST_TEST_INFO("metrics:\n" << pout);
    BOOST_TEST(contains(pout, "\nneptun_pg_up 1\n"));
    BOOST_TEST(contains(pout, "\nneptun_pg_connections{state=\"in_use\"} 2\n"));
    BOOST_TEST(contains(pout, "\nneptun_pg_batches_total 5\n"));
    BOOST_TEST(contains(pout, "\nneptun_pg_statement_duration_seconds_count 0\n"));
}

BOOST_AUTO_TEST_CASE(render_reports_readiness_and_store_health) {
    metrics m;
    m.framing_refusals = 3;
    auto text = m.render(false);
    BOOST_TEST_INFO("metrics:\n" << text);
    BOOST_TEST(contains(text, "\nneptun_ready 0\n"));
    BOOST_TEST(contains(text, "\nneptun_framing_refusals_total 3\n"));
}

BOOST_AUTO_TEST_CASE(readiness_is_ready_by_default) {
    readiness r;
    BOOST_TEST(r.ready());
    BOOST_TEST(r.describe() == R"({"status":"ready"})");
}

BOOST_AUTO_TEST_CASE(readiness_names_the_components_that_are_down) {
    readiness r;
    r.mark_down(readiness::redis);
    BOOST_TEST(!r.ready());
    BOOST_TEST(r.describe() == R"({"status":"not ready","draining":false,"down":["redis"]})");
    r.mark_down(readiness::postgres);
    BOOST_TEST(r.describe() ==
               R"({"status":"not ready","draining":false,"down":["redis","postgres"]})");
    r.mark_up(readiness::redis);
    BOOST_TEST(r.describe() == R"({"status":"not ready","draining":false,"down":["postgres"]})");
    r.mark_up(readiness::postgres);
    BOOST_TEST(r.ready());
    BOOST_TEST(r.describe() == R"({"status":"ready"})");
}

BOOST_AUTO_TEST_CASE(readiness_holds_one_mark_per_connection_down) {
    readiness r;
    r.mark_down(readiness::postgres);
    r.mark_down(readiness::postgres);
    r.mark_up(readiness::postgres);
    BOOST_TEST(!r.up(readiness::postgres));
    BOOST_TEST(r.up(readiness::redis));
    r.mark_up(readiness::postgres);
    BOOST_TEST(r.up(readiness::postgres));
}

BOOST_AUTO_TEST_CASE(draining_is_not_ready) {
    readiness r;
    r.start_draining();
    BOOST_TEST(r.draining());
    BOOST_TEST(!r.ready());
    BOOST_TEST(r.describe() == R"({"status":"not ready","draining":true,"down":[]})");
    r.mark_down(readiness::redis);
    BOOST_TEST(r.describe() == R"({"status":"not ready","draining":true,"down":["redis"]})");
}

BOOST_AUTO_TEST_SUITE_END()
