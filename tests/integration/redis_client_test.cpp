// The hiredis-on-Asio client against a real redis-server: pipelined lookups return each
// caller its own answer; a stopped server fails commands fast; a restarted one is found again.
#include <stdlib.h>

#include <boost/asio.hpp>
#include <boost/test/unit_test.hpp>

#include "neptun/redis/client.hpp"
#include "neptun/redis/session_store.hpp"
#include "support/stores.hpp"

using namespace neptun;
using namespace neptun::test;
namespace asio = boost::asio;

namespace {

redis::options options_for(int port) {
    redis::options o;
    o.where.host = "127.0.0.1";
    o.where.port = static_cast<std::uint16_t>(port);
    o.command_timeout = std::chrono::milliseconds(500);
    o.backoff_min = std::chrono::milliseconds(20);
    o.backoff_max = std::chrono::milliseconds(200);
    return o;
}

// Runs the io_context until `done` or the deadline.
void run_until(asio::io_context& ioc, const bool& done, std::chrono::milliseconds limit = 10s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(50ms);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_client)

BOOST_AUTO_TEST_CASE(concurrent_lookups_on_one_connection_get_their_own_answers) {
    redis_server server;
    constexpr int n = 500;
    for (int i = 0; i < n; i += 100) {
        std::vector<std::string> args{"MSET"};
        for (int k = i; k < i + 100; ++k) {
            args.push_back("neptun:session:t" + std::to_string(k));
            args.push_back(R"({"user":{"id":)" + std::to_string(k + 1) + "}}");
        }
        stores::redis(args, server.port());
    }
    asio::io_context ioc(1);
    redis::client client(ioc, options_for(server.port()));
    redis::session_store sessions(client, "neptun:session:");
    client.start();
    bool connected = false;
    asio::steady_timer poll(ioc);
    // Wait for the connection by issuing a probe lookup until it stops failing fast.
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            for (;;) {
                if (client.connected()) break;
                poll.expires_after(5ms);
                co_await poll.async_wait(asio::use_awaitable);
            }
            connected = true;
        },
        asio::detached);
    run_until(ioc, connected);
    BOOST_REQUIRE(connected);

    std::vector<std::int64_t> got(n, -1);
    int finished = 0;
    bool all = false;
    for (int i = 0; i < n; ++i) {
        asio::co_spawn(
            ioc,
            [&, i]() -> asio::awaitable<void> {
                auto r = co_await sessions.user_for("t" + std::to_string(i));
                got[i] = r.status == redis::session_status::ok ? r.user_id : -2;
                if (++finished == n) all = true;
            },
            asio::detached);
    }
    run_until(ioc, all);
    BOOST_REQUIRE(all);
    for (int i = 0; i < n; ++i) BOOST_TEST(got[i] == i + 1);
    // Every lookup shared the one connection.
    BOOST_TEST(stores::redis({"INFO", "clients"}, server.port()).find("connected_clients:2") !=
               std::string::npos);
    client.stop();
}

BOOST_AUTO_TEST_CASE(missing_and_unreadable_sessions) {
    redis_server server;
    stores::redis({"SET", "p:bad", "{"}, server.port());
    stores::redis(
        {"SET", "p:good", R"({"user":{"id":7,"primary_email":"a@b.c"},"loggedInAt":"x"})"},
        server.port());
    asio::io_context ioc(1);
    redis::client client(ioc, options_for(server.port()));
    redis::session_store sessions(client, "p:");
    client.start();
    std::vector<redis::session_lookup> results;
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ioc);
            while (!client.connected()) {
                t.expires_after(5ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            for (auto token : {"good", "bad", "absent"})
                results.push_back(co_await sessions.user_for(token));
            done = true;
        },
        asio::detached);
    run_until(ioc, done);
    BOOST_REQUIRE(done);
    BOOST_TEST((results[0].status == redis::session_status::ok && results[0].user_id == 7));
    BOOST_TEST((results[1].status == redis::session_status::invalid));
    BOOST_TEST((results[2].status == redis::session_status::unknown));
    client.stop();
}

BOOST_AUTO_TEST_CASE(a_stopped_server_fails_fast_and_a_restarted_one_is_used_again) {
    redis_server server;
    stores::redis({"SET", "k:x", R"({"user":{"id":9}})"}, server.port());
    asio::io_context ioc(1);
    redis::client client(ioc, options_for(server.port()));
    redis::session_store sessions(client, "k:");
    client.start();
    redis::session_lookup during, after;
    bool done = false;
    std::chrono::steady_clock::duration failed_in{};
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ioc);
            while (!client.connected()) {
                t.expires_after(5ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            server.stop();
            while (client.connected()) {
                t.expires_after(5ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            auto start = std::chrono::steady_clock::now();
            during = co_await sessions.user_for("x");
            failed_in = std::chrono::steady_clock::now() - start;
            server.start();
            stores::redis({"SET", "k:x", R"({"user":{"id":9}})"}, server.port());
            while (!client.connected()) {
                t.expires_after(5ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            after = co_await sessions.user_for("x");
            done = true;
        },
        asio::detached);
    run_until(ioc, done, 20s);
    BOOST_REQUIRE(done);
    BOOST_TEST((during.status == redis::session_status::unavailable));
    BOOST_TEST((failed_in < std::chrono::milliseconds(100)));
    BOOST_TEST((after.status == redis::session_status::ok && after.user_id == 9));
    client.stop();
}

BOOST_AUTO_TEST_CASE(one_slow_reply_does_not_fail_the_callers_behind_it) {
    redis_server server;
    stores::redis({"SET", "s:a", R"({"user":{"id":1}})"}, server.port());
    stores::redis({"SET", "s:b", R"({"user":{"id":2}})"}, server.port());
    asio::io_context ioc(1);
    auto o = options_for(server.port());
    o.command_timeout = 400ms;
    redis::client client(ioc, o);
    redis::session_store sessions(client, "s:");
    client.start();
    redis::session_lookup first, second, third;
    std::chrono::steady_clock::duration first_took{}, second_took{};
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ioc);
            while (!client.connected()) {
                t.expires_after(5ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            // Redis holds our commands for 600 ms: the first caller's reply comes after its
            // 400 ms, the second's (sent 300 ms later) within its own.
            BOOST_REQUIRE(stores::redis({"CLIENT", "PAUSE", "600", "ALL"}, server.port()) == "OK");
            auto start = std::chrono::steady_clock::now();
            asio::co_spawn(
                ioc,
                [&]() -> asio::awaitable<void> {
                    first = co_await sessions.user_for("a");
                    first_took = std::chrono::steady_clock::now() - start;
                },
                asio::detached);
            t.expires_after(300ms);
            co_await t.async_wait(asio::use_awaitable);
            second = co_await sessions.user_for("b");
            second_took = std::chrono::steady_clock::now() - start;
            third = co_await sessions.user_for("a");
            done = true;
        },
        asio::detached);
    run_until(ioc, done);
    BOOST_REQUIRE(done);
    BOOST_TEST((first.status == redis::session_status::unavailable));
    BOOST_TEST((first_took >= 390ms && first_took < 500ms));
    BOOST_TEST((second.status == redis::session_status::ok && second.user_id == 2));
    BOOST_TEST((second_took >= 550ms && second_took < 700ms));
    BOOST_TEST((third.status == redis::session_status::ok && third.user_id == 1));
    // Five connections in all: two SETs, ours, CLIENT PAUSE and this INFO; ours was never dropped.
    BOOST_TEST(
        stores::redis({"INFO", "stats"}, server.port()).find("total_connections_received:5") !=
        std::string::npos);
    client.stop();
}

BOOST_AUTO_TEST_CASE(a_unix_socket_serves_with_the_handshake) {
    char dir[] = "/tmp/neptun-redis-unix-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(dir));
    std::string path = std::string(dir) + "/redis.sock";
    redis_server server({"--unixsocket", path, "--requirepass", "pw"});
    run_command({"/usr/bin/redis-cli", "-p", std::to_string(server.port()), "-a", "pw",
                 "--no-auth-warning", "-n", "2", "SET", "u:x", R"({"user":{"id":5}})"});
    asio::io_context ioc(1);
    redis::options o;
    std::string why;
    o.where = *redis::parse_url("unix://" + path + "?db=2&password=pw", why);
    redis::client client(ioc, o);
    redis::session_store sessions(client, "u:");
    client.start();
    redis::session_lookup got;
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ioc);
            while (!client.connected()) {
                t.expires_after(5ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            got = co_await sessions.user_for("x");
            done = true;
        },
        asio::detached);
    run_until(ioc, done);
    BOOST_REQUIRE(done);
    BOOST_TEST((got.status == redis::session_status::ok && got.user_id == 5));
    client.stop();
    server.stop();
    run_command({"/bin/rm", "-rf", dir});
}

BOOST_AUTO_TEST_SUITE_END()
