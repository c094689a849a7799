// CONTRACT.md §1.3: what one connection may hold is bounded whatever the client sends. Many
// connections each send the most expensive legal input (a header at the byte and field
// limits, then a chunked body just under the body limit, held open) and the server's
// resident set grows by no more per connection than connection_memory_bound() says, which
// is what docs/operations.md and deploy/ size memory from. Idle keep-alive connections
// likewise.
#include <sys/resource.h>

#include <fstream>

#include "e2e/common.hpp"
#include "neptun/net/server.hpp"

using namespace neptun::test;

namespace {

std::size_t rss_bytes(pid_t pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6)) * 1024;
    return 0;
}

// The resident set once it has stopped growing: the server has read what was sent.
std::size_t settled_rss(pid_t pid) {
    auto last = rss_bytes(pid);
    for (auto until = std::chrono::steady_clock::now() + 10s;
         std::chrono::steady_clock::now() < until;) {
        std::this_thread::sleep_for(100ms);
        auto now = rss_bytes(pid);
        if (now == last) return now;
        last = now;
    }
    return last;
}

// A header of exactly `bytes` bytes in `fields` field lines, for a chunked PATCH.
std::string expensive_header(const seeded_user& u, std::size_t bytes, std::size_t fields) {
    std::string head = raw_patch(u, "Transfer-Encoding: chunked\r\n");
    std::size_t have = 4;
    std::size_t pads = fields - have;
    std::size_t room = bytes - head.size() - 2 - pads * 4;  // "a:" + value + CRLF each
    for (std::size_t i = 0; i < pads; ++i) {
        std::size_t len = room / (pads - i);
        room -= len;
        head += "a:" + std::string(len, 'v') + "\r\n";
    }
    return head + "\r\n";
}

// Sanitizers add redzones, shadow memory and a quarantine to every allocation: the resident
// set then says nothing about the release build's, which is what is bounded.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool measures_memory = false;
#else
constexpr bool measures_memory = true;
#endif

}  // namespace

BOOST_AUTO_TEST_SUITE(memory, *boost::unit_test::enable_if<measures_memory>())

BOOST_AUTO_TEST_CASE(the_most_expensive_legal_input_stays_within_the_documented_bound) {
    // The first connection waits, body unfinished, while the others are sent and measured.
    server_process srv(base_env({{"NEPTUN_BODY_TIMEOUT_MS", "60000"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user();
    const neptun::net::limits lim;  // the defaults the server runs with
    const auto bound = neptun::net::connection_memory_bound(lim);
    const auto header = expensive_header(u, lim.max_header_bytes, lim.max_header_fields);
    BOOST_REQUIRE(header.size() == lim.max_header_bytes);
    // The body in 1 KiB chunks with long (legal) extensions, up to just under the limit.
    std::string body;
    for (std::size_t sent = 0; sent + 1024 < lim.max_body_bytes; sent += 1024)
        body += "400;" + std::string(3000, 'e') + "\r\n" + std::string(1024, ' ') + "\r\n";

    constexpr int connections = 200;
    auto before = settled_rss(srv.process.pid());
    std::vector<std::unique_ptr<http_connection>> held;
    for (int i = 0; i < connections; ++i) {
        held.push_back(std::make_unique<http_connection>(srv.port));
        held.back()->send(header);
        held.back()->send(body);  // no last chunk: the server holds all of it
    }
    auto during = settled_rss(srv.process.pid());
    auto per = (during > before ? during - before : 0) / connections;
    BOOST_TEST_MESSAGE("active: " << per << " bytes per connection, bound " << bound.active);
    BOOST_TEST(per > lim.max_body_bytes / 2);  // the bodies really are held
    BOOST_TEST(per <= bound.active);

    // Each finishes as a valid request: nothing was refused along the way.
    for (auto& c : held) c->send("0\r\n\r\n");
    for (auto& c : held) {
        auto r = c->read_response();
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 400);  // the body is 64 KiB of white space: not JSON
        BOOST_TEST(r->body.starts_with(
            R"({"statusCode":400,"message":"Invalid request body","errors":[)"));
    }
}

BOOST_AUTO_TEST_CASE(idle_keep_alive_connections_stay_within_the_idle_bound) {
    // 1000 connections on each side: raise our descriptor limit (the server inherits it).
    rlimit fds{};
    getrlimit(RLIMIT_NOFILE, &fds);
    fds.rlim_cur = std::min<rlim_t>(fds.rlim_max, 8192);
    setrlimit(RLIMIT_NOFILE, &fds);
    BOOST_REQUIRE(fds.rlim_cur >= 2200);
    server_process srv(base_env());
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user();
    const auto bound = neptun::net::connection_memory_bound(neptun::net::limits{});
    // Warm the path once so first-use allocations are not counted.
    BOOST_REQUIRE(http_request(srv.port, "GET", u.path(), auth(u)));
    constexpr int connections = 1000;
    auto before = settled_rss(srv.process.pid());
    std::vector<std::unique_ptr<http_connection>> held;
    for (int i = 0; i < connections; ++i) {
        held.push_back(std::make_unique<http_connection>(srv.port));
        held.back()->send(build_request("GET", u.path(), auth(u)));
        auto r = held.back()->read_response();
        BOOST_REQUIRE(r);
        BOOST_REQUIRE(r->status == 200);
    }
    auto after = settled_rss(srv.process.pid());
    auto per = (after > before ? after - before : 0) / connections;
    BOOST_TEST_MESSAGE("idle: " << per << " bytes per connection, bound " << bound.idle);
    BOOST_TEST(per <= bound.idle);
}

BOOST_AUTO_TEST_SUITE_END()
