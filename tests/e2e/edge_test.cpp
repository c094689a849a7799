// CONTRACT.md §1.3 over raw sockets: trailers, chunk extensions, Host, bytes that cannot
// begin a request, empty lines before it, Date and X-Request-Id on every response, the
// header field cap, lingering close on the normal path, keep-alive during the shutdown
// delay, the admin port through the drain and past its connection cap, and the accept
// loops out of descriptors.
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

struct edge_fixture {
    edge_fixture() : srv(base_env()) { BOOST_REQUIRE(srv.wait_ready()); }
    server_process srv;
};

std::string raw_patch_head(const seeded_user& u, const std::string& extra = {}) {
    return "PATCH " + u.path() +
           " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + extra;
}

std::string name_of(const seeded_user& u) {
    return stores::project_field(u.project_id, "name");
}

// Sends `bytes`, expects one 400 with `message`, then the connection closed.
void expect_refused(std::uint16_t port, const std::string& bytes, const std::string& message) {
    http_connection c(port);
    c.send(bytes);
    auto r = c.read_response(5s);
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 400);
    BOOST_TEST(r->header("Content-Type") == "application/json");
    BOOST_TEST(r->body == R"({"statusCode":400,"message":")" + message + "\"}");
    BOOST_TEST(c.wait_closed(5s));
}

bool is_imf_date(const std::string& v) {
    static const std::regex form(
        "(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
        "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) 20[0-9]{2} [0-2][0-9]:[0-5][0-9]:"
        "[0-6][0-9] GMT");
    return std::regex_match(v, form);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(edge, edge_fixture)

BOOST_AUTO_TEST_CASE(a_cookie_in_a_trailer_signs_nobody_in) {
    auto u = seed_user();
    std::string body = R"({"name":"via trailer"})";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    expect_refused(srv.port,
                   raw_patch_head(u, "Transfer-Encoding: chunked\r\n\r\n") + size + "\r\n" + body +
                       "\r\n0\r\nCookie: " + u.cookie() + "\r\n\r\n",
                   "Trailer fields are not accepted");
    BOOST_TEST(name_of(u) == "Project of " + std::to_string(u.user_id));
    // Any trailer: one that would have turned a 200 into a 406 is refused the same way.
    expect_refused(
        srv.port,
        raw_patch_head(u, "Cookie: " + u.cookie() + "\r\nTransfer-Encoding: chunked\r\n\r\n") +
            size + "\r\n" + body + "\r\n0\r\nAccept: text/html\r\n\r\n",
        "Trailer fields are not accepted");
    BOOST_TEST(name_of(u) == "Project of " + std::to_string(u.user_id));
}

BOOST_AUTO_TEST_CASE(chunk_extensions_with_control_characters_or_too_long_are_refused) {
    auto u = seed_user();
    std::string body = R"({"name":"ext"})";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    auto with_ext = [&](const std::string& ext) {
        return raw_patch_head(u,
                              "Cookie: " + u.cookie() + "\r\nTransfer-Encoding: chunked\r\n\r\n") +
               size + ext + "\r\n" + body + "\r\n0\r\n\r\n";
    };
    expect_refused(srv.port, with_ext(";a=\"\nx\""), "Malformed request body");
    expect_refused(srv.port, with_ext(";a=\"\x01\""), "Malformed request body");
    expect_refused(srv.port, with_ext(";a=" + std::string(4100, 'x')), "Malformed request body");
    // A chunk line made long by leading zeros in its size.
    expect_refused(
        srv.port,
        raw_patch_head(u, "Cookie: " + u.cookie() + "\r\nTransfer-Encoding: chunked\r\n\r\n") +
            std::string(5000, '0') + size + "\r\n" + body + "\r\n0\r\n\r\n",
        "Malformed request body");
    BOOST_TEST(name_of(u) == "Project of " + std::to_string(u.user_id));
    // A plain extension is still fine.
    http_connection c(srv.port);
    c.send(with_ext(";a=\"b c\";d"));
    auto r = c.read_response();
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(name_of(u) == "ext");
}

BOOST_AUTO_TEST_CASE(http11_needs_exactly_one_host) {
    auto u = seed_user();
    expect_refused(srv.port, "GET " + u.path() + " HTTP/1.1\r\nCookie: " + u.cookie() + "\r\n\r\n",
                   "Exactly one Host header is required");
    expect_refused(
        srv.port,
        "GET " + u.path() + " HTTP/1.1\r\nHost: a\r\nHost: b\r\nCookie: " + u.cookie() + "\r\n\r\n",
        "Exactly one Host header is required");
    // Judged before the 413 a Content-Length over the limit would get.
    expect_refused(srv.port, "PATCH " + u.path() + " HTTP/1.1\r\nContent-Length: 999999\r\n\r\n",
                   "Exactly one Host header is required");
    // HTTP/1.0 may omit it.
    http_connection c(srv.port);
    c.send("GET " + u.path() + " HTTP/1.0\r\nCookie: " + u.cookie() + "\r\n\r\n");
    auto r = c.read_response();
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
}

BOOST_AUTO_TEST_CASE(a_tls_client_hello_is_refused_at_once) {
    // The first bytes of a TLS 1.2/1.3 ClientHello record.
    const std::string hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    auto started = std::chrono::steady_clock::now();
    expect_refused(srv.port, hello, "Malformed HTTP request");
    // The header timeout is 10 s; this must not wait for it.
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2s));
    expect_refused(srv.port, std::string("\0\0\0\0", 4), "Malformed HTTP request");
    expect_refused(srv.port, " GET / HTTP/1.1\r\n\r\n", "Malformed HTTP request");
}

BOOST_AUTO_TEST_CASE(empty_lines_before_the_request_line_are_ignored) {
    auto u = seed_user();
    http_connection c(srv.port);
    c.send("\r\n\r\n" + build_request("GET", u.path(), auth(u)));
    auto r = c.read_response();
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    // Also between pipelined requests, and arriving in pieces.
    c.send("\r\n");
    c.send("\r\n" + build_request("GET", u.path(), auth(u)));
    auto second = c.read_response();
    BOOST_REQUIRE(second);
    BOOST_TEST(second->status == 200);
}

BOOST_AUTO_TEST_CASE(every_response_has_a_date_and_a_request_id) {
    auto u = seed_user();
    std::vector<std::string> requests{
        build_request("GET", u.path(), auth(u)),                                       // 200
        build_request("GET", "/nowhere"),                                              // 404
        build_request("GET", u.path()),                                                // 401
        build_request("DELETE", u.path()),                                             // 405
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(9000, 'a') + "\r\n\r\n",  // 431
        "GET / HTTP/1.1\r\n\r\n",  // 400 (no Host)
    };
    std::set<std::string> ids;
    for (const auto& raw : requests) {
        http_connection c(srv.port);
        c.send(raw);
        auto r = c.read_response();
        BOOST_REQUIRE(r);
        BOOST_TEST_CONTEXT("status " << r->status) {
            BOOST_TEST(is_imf_date(r->header("Date")));
            BOOST_TEST(!r->header("X-Request-Id").empty());
            ids.insert(r->header("X-Request-Id"));
        }
    }
    BOOST_TEST(ids.size() == requests.size());  // each request its own id
}

BOOST_AUTO_TEST_CASE(a_valid_client_request_id_is_echoed_and_logged_with_the_trace) {
    auto u = seed_user();
    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    auto r = http_request(srv.port, "GET", u.path(),
                          auth(u, {{"X-Request-Id", "client-id-42"},
                                   {"traceparent", "00-" + trace + "-00f067aa0ba902b7-01"}}));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->header("X-Request-Id") == "client-id-42");
    BOOST_TEST(srv.process.wait_for_log("request_id=client-id-42 trace_id=" + trace, 5s));
    // Invalid ones are replaced, never echoed.
    for (std::string bad : {std::string(129, 'a'), std::string("has space"), std::string("")}) {
        auto other = http_request(srv.port, "GET", u.path(), auth(u, {{"X-Request-Id", bad}}));
        BOOST_REQUIRE(other);
        BOOST_TEST(other->header("X-Request-Id") != bad);
        BOOST_TEST(!other->header("X-Request-Id").empty());
    }
}

// A store problem met by a request is logged with that request's id and trace id
// (CONTRACT.md §1.3): a session value that is not a string, and one without a user id.
BOOST_AUTO_TEST_CASE(session_problems_are_logged_with_the_request_id) {
    const std::string trace = "0af7651916cd43dd8448eb211c80319c";
    auto u = seed_user();
    stores::redis({"DEL", "neptun:session:" + u.token});
    stores::redis({"HSET", "neptun:session:" + u.token, "user", "1"});
    auto r = http_request(srv.port, "GET", u.path(),
                          auth(u, {{"X-Request-Id", "hash-session-1"},
                                   {"traceparent", "00-" + trace + "-b7ad6b7169203331-01"}}));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 401);
    BOOST_TEST(
        srv.process.wait_for_log(
            "event=session_unreadable reason=\"not a string value\" request_id=hash-session-1 "
            "trace_id=" +
                trace,
            5s),
        srv.process.log());
    auto v = seed_user();
    stores::redis({"SET", "neptun:session:" + v.token, R"({"user":{}})"});
    auto w = http_request(srv.port, "GET", v.path(), auth(v, {{"X-Request-Id", "no-user-id-1"}}));
    BOOST_REQUIRE(w);
    BOOST_TEST(w->status == 401);
    BOOST_TEST(
        srv.process.wait_for_log(
            "event=session_unreadable reason=\"no integer user.id\" request_id=no-user-id-1", 5s),
        srv.process.log());
}

BOOST_AUTO_TEST_CASE(the_header_field_count_is_capped) {
    auto u = seed_user();
    auto with_fields = [&](int n) {
        std::string raw =
            "GET " + u.path() + " HTTP/1.1\r\nHost: x\r\nCookie: " + u.cookie() + "\r\n";
        for (int i = 2; i < n; ++i) raw += "a:\r\n";
        return raw + "\r\n";
    };
    http_connection ok(srv.port);
    ok.send(with_fields(100));
    auto r = ok.read_response();
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    http_connection over(srv.port);
    over.send(with_fields(101));
    auto refused = over.read_response();
    BOOST_REQUIRE(refused);
    BOOST_TEST(refused->status == 431);
    BOOST_TEST(over.wait_closed(5s));
}

BOOST_AUTO_TEST_CASE(a_request_pipelined_after_connection_close_does_not_reset_the_answer) {
    auto u = seed_user();
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(srv.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    std::string bytes = build_request("GET", u.path(), auth(u, {{"Connection", "close"}}));
    for (int i = 0; i < 200; ++i) bytes += build_request("GET", u.path(), auth(u));
    BOOST_REQUIRE(::send(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    // Await the server's end of the connection (FIN, or a reset) before reading: a reset
    // that arrives first destroys the response in our receive queue.
    pollfd p{fd, POLLRDHUP, 0};
    BOOST_REQUIRE(::poll(&p, 1, 5000) == 1);
    std::string got;
    char buf[65536];
    for (;;) {
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            BOOST_TEST(n == 0);  // an orderly end, not ECONNRESET
            break;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    BOOST_TEST(got.starts_with("HTTP/1.1 200 OK\r\n"));
    BOOST_TEST(got.find("\"id\":" + std::to_string(u.project_id)) != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(edge_drain)

BOOST_AUTO_TEST_CASE(during_the_shutdown_delay_responses_say_close) {
    server_process srv(base_env({{"NEPTUN_SHUTDOWN_DELAY_MS", "3000"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user();
    http_connection c(srv.port);
    c.send(build_request("GET", u.path(), auth(u)));
    auto before = c.read_response();
    BOOST_REQUIRE(before);
    BOOST_TEST(before->header("Connection") != "close");
    srv.process.signal(SIGTERM);
    BOOST_REQUIRE(srv.process.wait_for_log("event=shutdown_requested", 5s));
    c.send(build_request("GET", u.path(), auth(u)));
    auto during = c.read_response();
    BOOST_REQUIRE(during);
    BOOST_TEST(during->status == 200);  // still served during the delay
    BOOST_TEST(during->header("Connection") == "close");
    BOOST_TEST(c.wait_closed(5s));
    BOOST_TEST(srv.process.wait_exit(15s) == 0);
}

BOOST_AUTO_TEST_CASE(the_admin_port_answers_through_a_drain_with_no_delay) {
    server_process srv(base_env());  // NEPTUN_SHUTDOWN_DELAY_MS=0, the default
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user();
    auto locker = hold_row_lock(u.project_id, 3);
    http_connection busy(srv.port);
    busy.send(build_request("PATCH", u.path(), json_auth(u), R"({"name":"in flight"})"));
    BOOST_REQUIRE(wait_for_update_blocked_on_lock());
    srv.process.signal(SIGTERM);
    BOOST_REQUIRE(srv.process.wait_for_log("event=drain_started", 5s));
    auto ready = http_request(srv.admin_port, "GET", "/readyz");
    BOOST_REQUIRE(ready);
    BOOST_TEST(ready->status == 503);
    auto live = http_request(srv.admin_port, "GET", "/livez");
    BOOST_REQUIRE(live);
    BOOST_TEST(live->status == 200);
    auto metrics = http_request(srv.admin_port, "GET", "/metrics");
    BOOST_REQUIRE(metrics);
    BOOST_TEST(metrics->status == 200);
    auto r = busy.read_response(10s);
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(srv.process.wait_exit(10s) == 0);
    BOOST_TEST(locker->wait_exit(10s) == 0);
}

BOOST_AUTO_TEST_CASE(the_admin_port_has_a_connection_cap_and_keeps_serving) {
    server_process srv(base_env());
    BOOST_REQUIRE(srv.wait_ready());
    std::vector<std::unique_ptr<http_connection>> held;
    for (int i = 0; i < 64; ++i) {
        held.push_back(std::make_unique<http_connection>(srv.admin_port));
        held.back()->send(build_request("GET", "/livez"));
        BOOST_REQUIRE(held.back()->read_response());  // counted: it is being served
    }
    auto refused = http_request(srv.admin_port, "GET", "/livez");
    BOOST_REQUIRE(refused);
    BOOST_TEST(refused->status == 503);
    BOOST_TEST(refused->body == R"({"statusCode":503,"message":"Too many connections"})");
    held.pop_back();  // one slot free again: closed by us, seen by the server
    bool served = false;
    for (auto until = std::chrono::steady_clock::now() + 5s;
         !served && std::chrono::steady_clock::now() < until;) {
        auto r = http_request(srv.admin_port, "GET", "/livez");
        served = r && r->status == 200;
    }
    BOOST_TEST(served);
}

BOOST_AUTO_TEST_CASE(a_tiny_access_log_sample_is_accepted) {
    server_process srv(base_env({{"NEPTUN_ACCESS_LOG_SAMPLE", "1e-30"}, {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.wait_ready());
    for (int i = 0; i < 3; ++i) {
        auto r = http_request(srv.port, "GET", "/nowhere");
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 404);
    }
    // One in 10^30: the first request's line, and no other (counted once the exit has
    // flushed the log queue).
    srv.process.signal(SIGTERM);
    BOOST_TEST(srv.process.wait_exit(10s) == 0);
    BOOST_TEST(srv.process.count_in_log("event=access") == 1u);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// User and system CPU time a process has used so far (/proc/<pid>/stat, fields 14 and 15).
double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto after_name = stat.rfind(')');  // the command name may hold spaces
    if (after_name == std::string::npos) return -1;
    std::istringstream fields(stat.substr(after_name + 2));
    std::string f;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i)
        if (i >= 14) ticks += std::stod(f);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::size_t open_descriptors(pid_t pid) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
        ++n;
    return n;
}

}  // namespace

// The sanitizers' runtimes need descriptors of their own (UBSan's vptr check probes memory
// through a pipe), so out of descriptors they report errors that are not ours: the release
// build runs this suite.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool runs_out_of_descriptors = false;
#else
constexpr bool runs_out_of_descriptors = true;
#endif

BOOST_AUTO_TEST_SUITE(accept_loops, *boost::unit_test::enable_if<runs_out_of_descriptors>())

// Out of descriptors (EMFILE), the accept loops of the API port and of the admin port pause
// and retry instead of spinning, and both serve again once descriptors are free.
BOOST_AUTO_TEST_CASE(out_of_descriptors_the_accept_loops_pause_and_recover) {
    server_process srv(base_env({{"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.wait_ready());
    const pid_t pid = srv.process.pid();
    rlimit before{};
    BOOST_REQUIRE(::prlimit(pid, RLIMIT_NOFILE, nullptr, &before) == 0);
    const rlimit tight{open_descriptors(pid) + 1, before.rlim_max};
    BOOST_REQUIRE(::prlimit(pid, RLIMIT_NOFILE, &tight, nullptr) == 0);
    // The kernel completes these handshakes into the backlogs; accept(2) then fails.
    std::vector<std::unique_ptr<http_connection>> held;
    for (int i = 0; i < 4; ++i) {
        held.push_back(std::make_unique<http_connection>(srv.port));
        held.push_back(std::make_unique<http_connection>(srv.admin_port));
    }
    BOOST_REQUIRE_MESSAGE(srv.process.wait_for_log("event=accept_failed listener=api", 5s),
                          srv.process.log());
    BOOST_REQUIRE_MESSAGE(srv.process.wait_for_log("event=accept_failed listener=admin", 5s),
                          srv.process.log());
    // A measured window, not a wait: a spinning accept loop would burn all of it.
    const double cpu_start = cpu_seconds(pid);
    std::this_thread::sleep_for(1s);
    const double used = cpu_seconds(pid) - cpu_start;
    BOOST_TEST_MESSAGE("CPU while out of descriptors: " << used << " s in 1 s");
    BOOST_TEST(used < 0.3);
    // Descriptors back: the waiting connections are accepted and answered.
    BOOST_REQUIRE(::prlimit(pid, RLIMIT_NOFILE, &before, nullptr) == 0);
    auto u = seed_user();
    for (std::size_t i = 0; i < held.size(); ++i) {
        const bool admin = i % 2 == 1;
        held[i]->send(admin ? build_request("GET", "/livez")
                            : build_request("GET", u.path(), auth(u)));
        auto r = held[i]->read_response();
        BOOST_REQUIRE_MESSAGE(r, "connection " << i << " got no answer");
        BOOST_TEST(r->status == 200, "connection " << i);
    }
}

BOOST_AUTO_TEST_SUITE_END()
