// The server core over real sockets: keep-alive, pipelining, HTTP/1.0, limits, framing
// refusals, deadlines, the connection cap, the admin port and the SIGTERM drain.
#include <csignal>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

struct running_server {
    explicit running_server(env_map extra = {}) : srv(base_env(std::move(extra))) {
        BOOST_REQUIRE(srv.wait_ready());
    }
    server_process srv;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(server_core)

BOOST_AUTO_TEST_CASE(keep_alive_serves_several_requests_on_one_connection) {
    running_server s;
    auto u = seed_user();
    http_connection c(s.srv.port);
    for (int i = 0; i < 3; ++i) {
        c.send(build_request("GET", u.path(), auth(u)));
        auto r = c.read_response();
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 200);
        BOOST_TEST(r->header("Connection") != "close");
    }
}

BOOST_AUTO_TEST_CASE(pipelined_requests_take_effect_and_answer_in_order) {
    running_server s;
    auto u = seed_user();
    std::string pipeline = build_request("GET", u.path(), auth(u)) +
                           build_request("PATCH", u.path(), json_auth(u), R"({"name":"one"})") +
                           build_request("PATCH", u.path(), json_auth(u), R"({"name":"two"})") +
                           build_request("GET", u.path(), auth(u)) +
                           build_request("GET", "/nowhere", {});
    http_connection c(s.srv.port);
    c.send(pipeline);
    auto r1 = c.read_response(), r2 = c.read_response(), r3 = c.read_response(),
         r4 = c.read_response(), r5 = c.read_response();
    BOOST_REQUIRE(r1 && r2 && r3 && r4 && r5);
    BOOST_TEST(r1->status == 200);
    BOOST_TEST(r1->project_field("name") == "Project of " + std::to_string(u.user_id));
    BOOST_TEST(r2->project_field("name") == "one");
    BOOST_TEST(r3->project_field("name") == "two");
    BOOST_TEST(r4->body == stores::project_body(u.project_id));  // the row as it stands
    BOOST_TEST(r5->status == 404);
    BOOST_TEST(stores::project_field(u.project_id, "name") == "two");
}

BOOST_AUTO_TEST_CASE(http10_and_connection_close_end_the_connection) {
    running_server s;
    auto u = seed_user();
    {
        http_connection c(s.srv.port);
        c.send("GET " + u.path() + " HTTP/1.0\r\nCookie: " + u.cookie() + "\r\n\r\n");
        auto r = c.read_response();
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 200);
        BOOST_TEST(c.wait_closed(5s));
    }
    {
        http_connection c(s.srv.port);
        c.send(build_request("GET", u.path(), auth(u, {{"Connection", "close"}})));
        auto r = c.read_response();
        BOOST_REQUIRE(r);
        BOOST_TEST(r->header("Connection") == "close");
        BOOST_TEST(c.wait_closed(5s));
    }
}

BOOST_AUTO_TEST_CASE(chunked_request_body_is_read) {
    running_server s;
    auto u = seed_user();
    http_connection c(s.srv.port);
    std::string body = R"({"name":"chunked name"})";
    c.send(raw_patch(u, "Transfer-Encoding: chunked\r\n\r\n") +
           chunk(std::string_view(body).substr(0, body.size() - 5)) +
           chunk(std::string_view(body).substr(body.size() - 5)) + std::string(last_chunk));
    auto r = c.read_response();
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(r->body == stores::project_body(u.project_id));
    BOOST_TEST(r->project_field("name") == "chunked name");
}

BOOST_AUTO_TEST_CASE(expect_100_continue_is_honoured) {
    running_server s;
    auto u = seed_user();
    http_connection c(s.srv.port);
    std::string body = R"({"description":"after continue"})";
    c.send(raw_patch(
        u, "Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
    auto interim = c.read_response();
    BOOST_REQUIRE(interim);
    BOOST_TEST(interim->status == 100);
    c.send(body);
    auto r = c.read_response();
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
}

BOOST_AUTO_TEST_CASE(header_over_the_limit_is_431_json_and_close) {
    running_server s;
    http_connection c(s.srv.port);
    c.send(build_request("GET", "/api/users/1/projects/1", {{"X-Big", std::string(9000, 'a')}}));
    auto r = c.read_response();
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 431);
    BOOST_TEST(r->header("Content-Type") == "application/json");
    BOOST_TEST(r->body == R"({"statusCode":431,"message":"Request header fields too large"})");
    BOOST_TEST(c.wait_closed(5s));
}

BOOST_AUTO_TEST_CASE(header_just_under_the_limit_is_served) {
    running_server s;
    auto u = seed_user();
    auto request = build_request("GET", u.path(), auth(u, {{"X-Pad", ""}}));
    // Pad the request to exactly 8192 bytes of header.
    auto pad = 8192 - request.size();
    auto r = http_request(s.srv.port, "GET", u.path(), auth(u, {{"X-Pad", std::string(pad, 'p')}}));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    // One byte more, even spread over small fields, is over "8 KiB in all".
    header_list many = auth(u);
    std::size_t total = build_request("GET", u.path(), many).size();
    for (int i = 0; total + 60 <= 8192; ++i) {
        many.push_back({"X-F" + std::to_string(i), std::string(20, 'f')});
        total = build_request("GET", u.path(), many).size();
    }
    many.push_back({"X-Last", std::string(8193 - total - 10, 'l')});
    BOOST_REQUIRE(build_request("GET", u.path(), many).size() == 8193);
    auto over = http_request(s.srv.port, "GET", u.path(), many);
    BOOST_REQUIRE(over);
    BOOST_TEST(over->status == 431);
}

BOOST_AUTO_TEST_CASE(body_over_the_limit_is_413_with_length_and_chunked) {
    running_server s(env_map{{"NEPTUN_MAX_BODY_BYTES", "1024"}});
    auto u = seed_user();
    std::string big = R"({"description":")" + std::string(1100, 'd') + R"("})";
    {
        http_connection c(s.srv.port);
        c.send(build_request("PATCH", u.path(), json_auth(u), big));
        auto r = c.read_response();
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 413);
        BOOST_TEST(r->body == R"({"statusCode":413,"message":"Payload too large"})");
        BOOST_TEST(c.wait_closed(5s));
    }
    {
        http_connection c(s.srv.port);
        c.send(raw_patch(u, "Transfer-Encoding: chunked\r\n\r\n") + chunk(big) +
               std::string(last_chunk));
        auto r = c.read_response();
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 413);
    }
    {
        std::string fits = R"({"description":")" + std::string(1000, 'd') + R"("})";
        auto r = http_request(s.srv.port, "PATCH", u.path(), json_auth(u), fits);
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 200);
    }
}

BOOST_AUTO_TEST_CASE(ambiguous_framing_is_400_and_close_and_never_written) {
    running_server s;
    auto u = seed_user();
    std::string body = R"({"name":"smuggled"})";
    auto base = raw_patch(u);
    std::vector<std::string> attacks{
        base + "Content-Length: " + std::to_string(body.size()) +
            "\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
        base + "Transfer-Encoding: chunked\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body,
        base + "Transfer-Encoding: chunked, identity\r\n\r\n" + body,
        base + "Transfer-Encoding: gzip\r\n\r\n" + body,
        base + "Content-Length: " + std::to_string(body.size()) + "\r\nContent-Length: 3\r\n\r\n" +
            body,
        base + "Content-Length: 19, 3\r\n\r\n" + body,
        base + "Content-Length: \r\n\r\n" + body,
        std::string("GARBAGE\r\n\r\n"),
        std::string("GET / HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n"),
    };
    for (const auto& attack : attacks) {
        http_connection c(s.srv.port);
        c.send(attack);
        auto r = c.read_response();
        BOOST_REQUIRE_MESSAGE(r, "no answer to: " + attack.substr(0, 200));
        BOOST_TEST(r->status == 400, "for: " << attack.substr(0, 200));
        BOOST_TEST(r->header("Content-Type") == "application/json");
        BOOST_TEST(c.wait_closed(5s));
    }
    BOOST_TEST(stores::project_field(u.project_id, "name") != "smuggled");
}

BOOST_AUTO_TEST_CASE(a_client_that_trickles_its_header_is_cut_off) {
    running_server s(env_map{{"NEPTUN_HEADER_TIMEOUT_MS", "300"}});
    http_connection c(s.srv.port);
    auto started = std::chrono::steady_clock::now();
    c.send("GET /api/users/1/projects/1 HTTP/1.1\r\nHost: x\r\n");
    BOOST_TEST(c.wait_closed(5s));
    BOOST_TEST((std::chrono::steady_clock::now() - started < 3s));
}

BOOST_AUTO_TEST_CASE(a_client_that_trickles_its_body_is_cut_off) {
    running_server s(env_map{{"NEPTUN_BODY_TIMEOUT_MS", "300"}});
    auto u = seed_user();
    http_connection c(s.srv.port);
    c.send(raw_patch(u, "Content-Length: 100\r\n\r\n{\"na"));
    BOOST_TEST(c.wait_closed(5s));
    BOOST_TEST(stores::project_field(u.project_id, "name") ==
               "Project of " + std::to_string(u.user_id));
}

BOOST_AUTO_TEST_CASE(idle_keep_alive_connections_are_closed) {
    running_server s(env_map{{"NEPTUN_IDLE_TIMEOUT_MS", "300"}});
    auto u = seed_user();
    http_connection c(s.srv.port);
    c.send(build_request("GET", u.path(), auth(u)));
    BOOST_REQUIRE(c.read_response());
    BOOST_TEST(c.wait_closed(5s));
}

// Idle connections are timed out by one sweep per thread (server.cpp connection_registry):
// each at its own time, counted from when it went idle, and a connection that keeps asking
// is never closed under it.
BOOST_AUTO_TEST_CASE(each_idle_connection_is_closed_at_its_own_time_and_a_busy_one_never) {
    using namespace std::chrono;
    running_server s(env_map{{"NEPTUN_IDLE_TIMEOUT_MS", "600"}, {"NEPTUN_THREADS", "1"}});
    auto u = seed_user();
    http_connection first(s.srv.port), busy(s.srv.port);
    // Lower bounds count from before a request is sent (the server goes idle after it
    // answered, so later), upper bounds from after its answer was read.
    const auto first_sent = steady_clock::now();
    first.send(build_request("GET", u.path(), auth(u)));
    BOOST_REQUIRE(first.read_response());
    const auto first_read = steady_clock::now();
    std::optional<steady_clock::time_point> first_closed;
    auto busy_sent = first_sent, busy_read = first_read;
    for (int i = 0; i < 12; ++i) {  // about 1.2 s: twice the timeout
        busy_sent = steady_clock::now();
        busy.send(build_request("GET", u.path(), auth(u)));
        auto r = busy.read_response();
        BOOST_REQUIRE_MESSAGE(r, "the busy connection was closed after " << i << " requests");
        BOOST_TEST(r->status == 200);
        busy_read = steady_clock::now();
        // Waiting for the first connection's close is also the busy one's pause.
        if (!first_closed && first.wait_closed(100ms))
            first_closed = steady_clock::now();
        else if (first_closed)
            std::this_thread::sleep_for(100ms);
    }
    BOOST_REQUIRE(first_closed);
    BOOST_TEST(duration_cast<milliseconds>(*first_closed - first_sent).count() >= 600);
    BOOST_TEST(duration_cast<milliseconds>(*first_closed - first_read).count() < 1100);
    BOOST_REQUIRE(busy.wait_closed(5s));
    const auto busy_closed = steady_clock::now();
    BOOST_TEST(duration_cast<milliseconds>(busy_closed - busy_sent).count() >= 600);
    BOOST_TEST(duration_cast<milliseconds>(busy_closed - busy_read).count() < 1100);
    BOOST_TEST(std::stod(metric(s.srv.admin_port, "neptun_deadline_closes_total")) == 2.0);
}

// A SIGTERM right at start-up (as soon as "listening" is read, before the stores' connections
// are up and while the control loop may not have run yet) is a clean drain, never the
// default action that would kill the process. The line reaches us through the log writer
// (its batch or 10 ms tick), so the handler's being installed before the line is logged
// (app.cpp) is kept by the code's order, not shown by this test.
BOOST_AUTO_TEST_CASE(a_sigterm_right_at_start_up_is_a_clean_drain) {
    for (int i = 0; i < 3; ++i) {
        BOOST_TEST_CONTEXT("start " << i) {
            server_process srv(base_env({}));  // returns once "event=listening" is read
            srv.process.signal(SIGTERM);
            BOOST_TEST(srv.process.wait_exit(20s) == 0);
            BOOST_TEST(srv.process.count_in_log("event=shutdown_requested") == 1u);
            BOOST_TEST(srv.process.count_in_log("event=stopped exit_code=0") == 1u);
        }
    }
}

BOOST_AUTO_TEST_CASE(connection_cap_refuses_new_connections_and_keeps_serving) {
    running_server s(env_map{{"NEPTUN_MAX_CONNECTIONS", "2"}, {"NEPTUN_THREADS", "1"}});
    auto u = seed_user();
    http_connection a(s.srv.port), b(s.srv.port);
    a.send(build_request("GET", u.path(), auth(u)));
    BOOST_REQUIRE(a.read_response());
    b.send(build_request("GET", u.path(), auth(u)));
    BOOST_REQUIRE(b.read_response());
    http_connection extra(s.srv.port);
    auto refused = extra.read_response();
    BOOST_REQUIRE(refused);
    BOOST_TEST(refused->status == 503);
    BOOST_TEST(refused->header("Retry-After") == "1");
    BOOST_TEST(refused->body == R"({"statusCode":503,"message":"Too many connections"})");
    BOOST_TEST(extra.wait_closed(5s));
    a.send(build_request("GET", u.path(), auth(u)));
    auto still = a.read_response();
    BOOST_REQUIRE(still);
    BOOST_TEST(still->status == 200);
}

BOOST_AUTO_TEST_CASE(admin_port_serves_probes_and_metrics_and_never_the_api) {
    running_server s;
    auto live = http_request(s.srv.admin_port, "GET", "/livez");
    BOOST_REQUIRE(live);
    BOOST_TEST(live->status == 200);
    BOOST_TEST(live->body == R"({"status":"alive"})");
    auto ready = http_request(s.srv.admin_port, "GET", "/readyz");
    BOOST_REQUIRE(ready);
    BOOST_TEST(ready->status == 200);
    BOOST_TEST(ready->body == R"({"status":"ready"})");
    auto u = seed_user();
    BOOST_REQUIRE(http_request(s.srv.port, "GET", u.path(), auth(u))->status == 200);
    auto metrics = http_request(s.srv.admin_port, "GET", "/metrics");
    BOOST_REQUIRE(metrics);
    BOOST_TEST(metrics->status == 200);
    BOOST_TEST(metrics->header("Content-Type").starts_with("text/plain"));
    for (auto needle :
         {"neptun_http_requests_total{route=\"project\",status=\"200\"} 1",
          "neptun_http_request_duration_seconds_bucket{route=\"project\",le=\"+Inf\"} 1",
          "neptun_open_connections ", "process_start_time_seconds ", "neptun_redis_commands_total ",
          "neptun_pg_connections{state=\"idle\"} ", "neptun_ready 1"})
        BOOST_TEST(metrics->body.find(needle) != std::string::npos, needle);
    BOOST_TEST(http_request(s.srv.admin_port, "GET", u.path(), auth(u))->status == 404);
    for (auto path : {"/livez", "/readyz", "/metrics"})
        BOOST_TEST(http_request(s.srv.port, "GET", path)->status == 404);
}

BOOST_AUTO_TEST_CASE(unknown_paths_and_methods_are_json_404_and_405) {
    running_server s;
    auto nf = http_request(s.srv.port, "GET", "/api/users/1/projects/1/extra");
    BOOST_REQUIRE(nf);
    BOOST_TEST(nf->status == 404);
    BOOST_TEST(nf->body == R"({"statusCode":404,"message":"Not found"})");
    auto na = http_request(s.srv.port, "DELETE", "/api/users/1/projects/1");
    BOOST_REQUIRE(na);
    BOOST_TEST(na->status == 405);
    BOOST_TEST(na->header("Allow") == "GET, PATCH");
    BOOST_TEST(na->body == R"({"statusCode":405,"message":"Method not allowed"})");
    // HEAD: the same answer without a body, and the connection stays usable.
    http_connection c(s.srv.port);
    c.send(build_request("HEAD", "/api/users/1/projects/1") + build_request("GET", "/nowhere"));
    auto head = c.read_response(10s, true);
    BOOST_REQUIRE(head);
    BOOST_TEST(head->status == 405);
    BOOST_TEST(head->header("Content-Length") == "49");
    auto next = c.read_response();
    BOOST_REQUIRE(next);
    BOOST_TEST(next->status == 404);
}

BOOST_AUTO_TEST_CASE(sigterm_drains_requests_in_flight_and_exits_zero) {
    running_server s(env_map{{"NEPTUN_SHUTDOWN_DELAY_MS", "200"}});
    auto u = seed_user();
    // Hold the row's lock so the PATCH stays in flight while the signal arrives.
    auto locker = hold_row_lock(u.project_id, 1.5);
    http_connection idle(s.srv.port);
    idle.send(build_request("GET", u.path(), auth(u)));
    BOOST_REQUIRE(idle.read_response());
    http_connection late(s.srv.port);
    late.send("GET " + u.path() + " HTTP/1.1\r\n");  // its header completes after the drain began
    http_connection busy(s.srv.port);
    busy.send(build_request("PATCH", u.path(), json_auth(u), R"({"name":"during drain"})"));
    // The PATCH is in flight once PostgreSQL shows it waiting for the row lock.
    BOOST_REQUIRE(wait_for_update_blocked_on_lock());
    s.srv.process.signal(SIGTERM);
    BOOST_REQUIRE(s.srv.process.wait_for_log("event=shutdown_requested", 5s));
    auto ready = http_request(s.srv.admin_port, "GET", "/readyz");
    BOOST_REQUIRE(ready);
    BOOST_TEST(ready->status == 503);
    BOOST_TEST(ready->body == R"({"status":"not ready","draining":true,"down":[]})");
    BOOST_TEST(idle.wait_closed(5s));  // the idle keep-alive connection is closed
    BOOST_REQUIRE(s.srv.process.wait_for_log("event=drain_started", 5s));
    late.send("Host: x\r\nCookie: " + u.cookie() + "\r\n\r\n");
    auto refused = late.read_response();
    BOOST_REQUIRE(refused);
    if (refused->status != 503) BOOST_TEST_MESSAGE(s.srv.process.log());
    BOOST_TEST(refused->status == 503);
    BOOST_TEST(refused->header("Retry-After") == "1");
    BOOST_TEST(refused->body == R"({"statusCode":503,"message":"Server is shutting down"})");
    BOOST_TEST(late.wait_closed(5s));
    auto r = busy.read_response(10s);
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(r->header("Connection") == "close");
    BOOST_TEST(s.srv.process.wait_exit(10s) == 0);
    BOOST_TEST(locker->wait_exit(10s) == 0);
    BOOST_TEST(stores::project_field(u.project_id, "name") == "during drain");
}

BOOST_AUTO_TEST_SUITE_END()
