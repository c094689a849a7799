// Store outages through HTTP: Redis or PostgreSQL down, slow or restarted. Answers are 503
// with Retry-After (never 401, 404 or an unwritten 200), /readyz follows, and service
// comes back by itself.
#include <stdlib.h>

#include <atomic>
#include <thread>

#include "e2e/common.hpp"
#include "e2e/write_load.hpp"

using namespace neptun::test;

namespace {

const std::string unavailable =
    R"({"statusCode":503,"message":"Service unavailable, retry later"})";

void expect_503(const maybe_response& r) {
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 503);
    BOOST_TEST(r->header("Retry-After") == "1");
    BOOST_TEST(r->body == unavailable);
}

// Awaits /readyz reaching `status` (readiness changes only through the stores' events).
bool readyz_becomes(std::uint16_t admin_port, int status, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto r = http_request(admin_port, "GET", "/readyz");
        if (r && r->status == status) return true;
    }
    return false;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(outages)

BOOST_AUTO_TEST_CASE(redis_down_is_503_and_recovers_without_a_restart) {
    redis_server redis;
    server_process srv(
        base_env({{"NEPTUN_REDIS_URL", redis.url()}, {"NEPTUN_REDIS_TIMEOUT_MS", "500"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user("neptun", redis.port());
    BOOST_TEST(http_request(srv.port, "GET", u.path(), auth(u))->status == 200);

    redis.stop();
    BOOST_REQUIRE(srv.process.wait_for_log("event=redis_down", 5s));
    auto started = std::chrono::steady_clock::now();
    expect_503(http_request(srv.port, "GET", u.path(), auth(u)));
    expect_503(http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":"x"})"));
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2s));
    auto ready = http_request(srv.admin_port, "GET", "/readyz");
    BOOST_REQUIRE(ready);
    BOOST_TEST(ready->status == 503);
    BOOST_TEST(ready->body == R"({"status":"not ready","draining":false,"down":["redis"]})");
    // Without a session the answer is still 401: no Redis round trip is needed for that.
    BOOST_TEST(http_request(srv.port, "GET", u.path(), {})->status == 401);

    redis.start();
    stores::redis({"SET", "neptun:session:" + u.token,
                   R"({"user":{"id":)" + std::to_string(u.user_id) + "}}"},
                  redis.port());
    BOOST_REQUIRE(srv.process.wait_for_log("event=redis_connected", 15s, 2 * srv.threads));
    BOOST_TEST(readyz_becomes(srv.admin_port, 200, 10s));
    BOOST_TEST(http_request(srv.port, "GET", u.path(), auth(u))->status == 200);
}

BOOST_AUTO_TEST_CASE(redis_that_stops_answering_is_503_within_the_command_timeout) {
    redis_server redis;
    server_process srv(base_env({{"NEPTUN_REDIS_URL", redis.url()},
                                 {"NEPTUN_REDIS_TIMEOUT_MS", "300"},
                                 {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user("neptun", redis.port());
    // CLIENT PAUSE holds every other client's commands: Redis is up, connected, and silent.
    auto paused = run_command({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "CLIENT",
                               "PAUSE", "1500", "ALL"});
    BOOST_REQUIRE(paused.out == "OK\n");
    for (int i = 0; i < 3; ++i) {
        auto started = std::chrono::steady_clock::now();
        auto r = http_request(srv.port, "GET", u.path(), auth(u));
        auto took = std::chrono::steady_clock::now() - started;
        expect_503(r);
        // The deadline holds: 300 ms, not the 1.25 times of a polling tick.
        BOOST_TEST((took >= 290ms));
        BOOST_TEST((took < 450ms));
    }
    // A PING of our own returns when the pause ends; the late replies are read and dropped
    // and the same connection serves again: no reconnect, let alone a storm of them.
    BOOST_REQUIRE(stores::redis({"PING"}, redis.port()) == "PONG");
    BOOST_TEST(http_request(srv.port, "GET", u.path(), auth(u))->status == 200);
    BOOST_TEST(srv.process.count_in_log("event=redis_connected") == 1u);
    BOOST_TEST(srv.process.count_in_log("event=redis_drop") == 0u);
    auto metrics = http_request(srv.admin_port, "GET", "/metrics");
    BOOST_REQUIRE(metrics);
    BOOST_TEST(metric_in(metrics->body, "neptun_redis_late_replies_total") == "3");
    BOOST_TEST(metric_in(metrics->body, "neptun_redis_timeouts_total") == "3");
}

BOOST_AUTO_TEST_CASE(redis_auth_and_db_index_come_from_the_url) {
    redis_server redis({"--requirepass", "s3cret"});
    std::string token = "auth-test-token";
    run_command({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "-a", "s3cret",
                 "--no-auth-warning", "-n", "3", "SET", "neptun:session:" + token,
                 R"({"user":{"id":424242}})"});
    server_process srv(base_env({{"NEPTUN_REDIS_URL", "redis://:s3cret@127.0.0.1:" +
                                                          std::to_string(redis.port()) + "/3"}}));
    BOOST_REQUIRE(srv.wait_ready());
    // The session says user 424242: the path's user differs, so a 403 proves the lookup worked.
    auto r = http_request(srv.port, "GET", "/api/users/1/projects/1",
                          {{"Cookie", "neptun-session=" + token}});
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 403);
    // db 0 has no such key: the same token against db 0 is unknown.
    server_process other(base_env({{"NEPTUN_REDIS_URL", "redis://:s3cret@127.0.0.1:" +
                                                            std::to_string(redis.port()) + "/0"}}));
    BOOST_REQUIRE(other.wait_ready());
    BOOST_TEST(http_request(other.port, "GET", "/api/users/1/projects/1",
                            {{"Cookie", "neptun-session=" + token}})
                   ->status == 401);
    // A wrong password keeps the server not ready, and requests get 503, not 401.
    server_process wrong(base_env(
        {{"NEPTUN_REDIS_URL", "redis://:nope@127.0.0.1:" + std::to_string(redis.port()) + "/3"}}));
    BOOST_REQUIRE(wrong.process.wait_for_log("event=redis_setup_failed", 10s));
    expect_503(http_request(wrong.port, "GET", "/api/users/1/projects/1",
                            {{"Cookie", "neptun-session=" + token}}));
}

BOOST_AUTO_TEST_CASE(postgres_stopped_is_503_and_restarted_recovers) {
    server_process srv(base_env({{"NEPTUN_PG_CONNECT_TIMEOUT_MS", "1000"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user();
    BOOST_TEST(http_request(srv.port, "GET", u.path(), auth(u))->status == 200);
    BOOST_REQUIRE(stores::pg_ctl("stop") == 0);
    BOOST_REQUIRE(srv.process.wait_for_log("event=pg_down", 10s));
    expect_503(http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":"lost?"})"));
    expect_503(http_request(srv.port, "GET", u.path(), auth(u)));
    auto ready = http_request(srv.admin_port, "GET", "/readyz");
    BOOST_REQUIRE(ready);
    BOOST_TEST(ready->status == 503);
    BOOST_TEST(ready->body == R"({"status":"not ready","draining":false,"down":["postgres"]})");
    BOOST_REQUIRE(stores::pg_ctl("start") == 0);
    BOOST_REQUIRE(srv.process.wait_for_log("event=pg_connected", 20s, 2 * srv.threads));
    BOOST_TEST(readyz_becomes(srv.admin_port, 200, 10s));
    auto r = http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":"after restart"})");
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(stores::project_field(u.project_id, "name") == "after restart");
}

BOOST_AUTO_TEST_CASE(a_slow_database_is_503_at_the_deadline_and_never_a_false_200) {
    server_process srv(base_env({{"NEPTUN_HANDLER_TIMEOUT_MS", "400"}, {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user();
    auto locker = hold_row_lock(u.project_id, 2, true);
    auto started = std::chrono::steady_clock::now();
    expect_503(http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":"slow"})"));
    BOOST_TEST((std::chrono::steady_clock::now() - started < 1500ms));
    BOOST_TEST(locker->wait_exit(10s) == 0);
    // Once the lock is gone, the same connection pool serves again.
    auto r = http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":"fast"})");
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
}

namespace {

// Clients write 1, 2, 3... into their own projects, one request at a time, while `fault`
// runs in the middle of the load; afterwards every acknowledged write is in the database.
template <typename Fault>
void writes_survive(Fault fault) {
    server_process srv(base_env({{"NEPTUN_PG_CONNECT_TIMEOUT_MS", "1000"}}));
    BOOST_REQUIRE(srv.wait_ready());
    std::vector<seeded_user> users;
    for (int i = 0; i < 8; ++i) users.push_back(seed_user());
    write_load load(srv, users);
    BOOST_REQUIRE_MESSAGE(load.await_ok(200), "no 200 writes before the fault");
    fault(srv);
    // Full service comes back by itself: 200 more acknowledged writes.
    BOOST_REQUIRE_MESSAGE(load.await_ok(load.ok() + 200), "no 200 writes after the fault");
    load.stop();
    BOOST_TEST(load.other() == 0);
    BOOST_TEST(load.unavailable() > 0);  // the fault was seen
    load.check_survived(
        [](std::int64_t project) { return stores::project_field(project, "description"); });
}

}  // namespace

BOOST_AUTO_TEST_CASE(postgres_restarted_under_load_loses_no_acknowledged_write) {
    writes_survive([](server_process& srv) {
        BOOST_REQUIRE(stores::pg_ctl("restart") == 0);
        BOOST_REQUIRE(srv.process.wait_for_log("event=pg_connected", 30s, 2 * srv.threads));
    });
}

BOOST_AUTO_TEST_CASE(postgres_crashed_under_load_loses_no_acknowledged_write) {
    writes_survive([](server_process& srv) {
        auto connected = srv.process.count_in_log("event=pg_connected");
        BOOST_REQUIRE(stores::pg_ctl("stop", "immediate") == 0);  // as a crash: no checkpoint
        BOOST_REQUIRE(stores::pg_ctl("start") == 0);
        BOOST_REQUIRE(srv.process.wait_for_log("event=pg_connected", 30s, connected + srv.threads));
    });
}

BOOST_AUTO_TEST_CASE(redis_killed_under_load_is_503_never_401_and_recovers) {
    // Sessions must survive the kill, as they do in production (AOF, every write synced).
    char dir[] = "/tmp/neptun-redis-aof-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(dir));
    redis_server redis({"--appendonly", "yes", "--appendfsync", "always", "--dir", dir});
    server_process srv(
        base_env({{"NEPTUN_REDIS_URL", redis.url()}, {"NEPTUN_REDIS_TIMEOUT_MS", "500"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user("neptun", redis.port());
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, unavailable{0}, other{0};
    std::vector<std::thread> threads;
    for (int c = 0; c < 4; ++c) {
        threads.emplace_back([&] {
            while (!stop) {
                auto r = http_request(srv.port, "GET", u.path(), auth(u));
                if (r && r->status == 200) {
                    ++ok;
                    ok.notify_all();
                } else if (r && r->status == 503 && r->header("Retry-After") == "1") {
                    ++unavailable;
                } else {
                    ++other;
                }
            }
        });
    }
    auto await_ok = [&](int target) {
        for (int seen = ok; seen < target; seen = ok) ok.wait(seen);
    };
    await_ok(200);
    redis.stop();  // SIGKILL
    BOOST_REQUIRE(srv.process.wait_for_log("event=redis_down", 5s));
    redis.start();
    await_ok(ok + 200);
    stop = true;
    for (auto& t : threads) t.join();
    BOOST_TEST(other == 0);  // never a 401 for a valid session, never anything but 200 or 503
    BOOST_TEST(unavailable > 0);
    redis.stop();
    run_command({"/bin/rm", "-rf", dir});
}

BOOST_AUTO_TEST_SUITE_END()
