// One order per project: a later 200 is never overwritten by an earlier request's write.
// The scenario of issue 12: PATCH v1 waits on a connection behind a statement stuck on a
// row lock; it is answered 503; the client's retry v2 commits and is answered 200; then
// the lock goes away. The row must hold v2, i.e. v1 was answered 503 only once it could no
// longer commit.
#include <algorithm>
#include <thread>
#include <vector>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

// Awaits `sql` (on the postgres database) printing `value`.
bool psql_becomes(const std::string& sql, const std::string& value,
                  std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline)
        if (stores::psql(sql, "postgres") == value) return true;
    return false;
}

const std::string our_lock_waits =
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'neptun-api' AND "
    "wait_event_type = 'Lock'";

}  // namespace

BOOST_AUTO_TEST_SUITE(pg_order)

BOOST_AUTO_TEST_CASE(a_503_write_never_overwrites_the_acknowledged_retry) {
    // One thread, two connections, no batching: which connection takes what is known.
    // The statement timeout is left to its default, which is below the handler timeout.
    server_process srv(base_env({{"NEPTUN_HANDLER_TIMEOUT_MS", "1000"},
                                 {"NEPTUN_THREADS", "1"},
                                 {"NEPTUN_PG_POOL_SIZE", "2"},
                                 {"NEPTUN_PG_BATCH", "off"}}));
    BOOST_REQUIRE(srv.wait_ready());
    BOOST_REQUIRE(psql_becomes(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'neptun-api' AND "
        "datname = 'neptun'",
        "2"));
    auto a = seed_user(), b = seed_user(), c = seed_user();
    // The test's own locks: A (v1's row) for 2.5 s, B for 3.5 s, C for 1 s.
    auto lock_a = hold_row_lock(a.project_id, 2.5);
    auto lock_b = hold_row_lock(b.project_id, 3.5);
    auto lock_c = hold_row_lock(c.project_id, 1.0);
    // x1 (B) waits on connection 1, x2 (C) on connection 2; v1 (A) goes behind x1.
    maybe_response x1, x2, v1;
    std::thread t1(
        [&] { x1 = http_request(srv.port, "PATCH", b.path(), json_auth(b), R"({"name":"x1"})"); });
    BOOST_REQUIRE(psql_becomes(our_lock_waits, "1"));
    std::thread t2(
        [&] { x2 = http_request(srv.port, "PATCH", c.path(), json_auth(c), R"({"name":"x2"})"); });
    BOOST_REQUIRE(psql_becomes(our_lock_waits, "2"));
    v1 = http_request(srv.port, "PATCH", a.path(), json_auth(a), R"({"name":"v1"})");
    BOOST_REQUIRE(v1);
    BOOST_TEST(v1->status == 503);
    // The client retries once A's and C's locks are gone (B's is still held).
    BOOST_TEST(lock_a->wait_exit(10s) == 0);
    BOOST_TEST(lock_c->wait_exit(10s) == 0);
    auto v2 = http_request(srv.port, "PATCH", a.path(), json_auth(a), R"({"name":"v2"})");
    BOOST_REQUIRE(v2);
    BOOST_TEST(v2->status == 200);
    BOOST_TEST(v2->project_field("name") == "v2");
    BOOST_TEST(lock_b->wait_exit(10s) == 0);
    t1.join();
    t2.join();
    for (auto* r : {&x1, &x2}) {
        BOOST_REQUIRE(*r);
        BOOST_TEST(((*r)->status == 200 || (*r)->status == 503));
    }
    // Whatever was still queued behind the lock has run by now.
    BOOST_REQUIRE(psql_becomes(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'neptun-api' AND "
        "state <> 'idle'",
        "0"));
    BOOST_TEST(stores::project_field(a.project_id, "name") == "v2");
}

BOOST_AUTO_TEST_CASE(one_projects_concurrent_writes_never_run_on_two_connections) {
    // Four connections, one thread, no batching: without pins, each PATCH to A would take an
    // idle connection of its own and wait on A's row there.
    // Deadlines far beyond the lock, so that a slow (sanitized) build still has every write
    // of A queued while the lock is held, and none is answered 503.
    server_process srv(base_env({{"NEPTUN_THREADS", "1"},
                                 {"NEPTUN_PG_POOL_SIZE", "4"},
                                 {"NEPTUN_PG_BATCH", "off"},
                                 {"NEPTUN_HANDLER_TIMEOUT_MS", "20000"},
                                 {"NEPTUN_PG_STATEMENT_TIMEOUT_MS", "15000"}}));
    BOOST_REQUIRE(srv.wait_ready());
    BOOST_REQUIRE(psql_becomes(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'neptun-api' AND "
        "datname = 'neptun'",
        "4"));
    auto a = seed_user(), b = seed_user();
    auto lock_a = hold_row_lock(a.project_id, 6.0);
    std::vector<maybe_response> writes(3);
    std::vector<std::thread> threads;
    threads.emplace_back([&] {
        writes[0] = http_request(srv.port, "PATCH", a.path(), json_auth(a), R"({"name":"a1"})");
    });
    BOOST_REQUIRE(psql_becomes(our_lock_waits, "1"));
    for (int i = 1; i < 3; ++i)
        threads.emplace_back([&, i] {
            writes[i] = http_request(srv.port, "PATCH", a.path(), json_auth(a),
                                     R"({"name":"a)" + std::to_string(i + 1) + R"("})");
        });
    // Another project's write commits while A's are held up.
    auto other = http_request(srv.port, "PATCH", b.path(), json_auth(b), R"({"name":"b1"})");
    BOOST_REQUIRE(other);
    BOOST_TEST(other->status == 200);
    BOOST_TEST(stores::project_field(b.project_id, "name") == "b1");
    BOOST_TEST(lock_a->running());
    // While the lock is held, exactly one of our backends waits on a lock (A's row); the
    // other writes of A wait behind it on the same connection, not on backends of their own.
    const std::string waiting_backends =
        "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid "
        "WHERE NOT l.granted AND s.application_name = 'neptun-api'";
    // Sampled until the lock goes (a2 and a3 reach the pool well within its 6 s).
    int samples = 0, most = 0;
    auto until = std::chrono::steady_clock::now() + 8s;
    while (std::chrono::steady_clock::now() < until && lock_a->running()) {
        auto n = stores::psql(waiting_backends, "postgres");
        BOOST_REQUIRE(!n.empty());
        most = std::max(most, std::stoi(n));
        ++samples;
        std::this_thread::sleep_for(50ms);  // paces the polling, waits for nothing
    }
    BOOST_TEST(samples >= 10);
    BOOST_TEST(most == 1);
    BOOST_TEST(lock_a->wait_exit(10s) == 0);
    for (auto& t : threads) t.join();
    for (auto& w : writes) {
        BOOST_REQUIRE(w);
        BOOST_TEST(w->status == 200);
    }
    // a1 ran first; a2 and a3 after it, in their order of arrival.
    auto name = stores::project_field(a.project_id, "name");
    BOOST_TEST((name == "a2" || name == "a3"));
}

BOOST_AUTO_TEST_SUITE_END()
