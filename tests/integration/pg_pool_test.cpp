// The libpq-on-Asio pool against a real PostgreSQL: many statements in flight on few
// connections, each answered with its own row; the server's statement timeout; recovery
// after `pg_ctl restart`.
#include <boost/asio.hpp>
#include <boost/test/unit_test.hpp>

#include "neptun/pg/pool.hpp"
#include "neptun/pg/stats.hpp"
#include "neptun/projects/service.hpp"
#include "support/stores.hpp"

using namespace neptun;
using namespace neptun::test;
namespace asio = boost::asio;

namespace {

pg::options pool_options(unsigned size = 2) {
    pg::options o;
    o.conninfo = stores::database_url();
    o.size = size;
    o.pipeline_depth = 8;
    o.wait = std::chrono::milliseconds(2000);
    o.statement_timeout = std::chrono::milliseconds(300);
    o.backoff_min = std::chrono::milliseconds(50);
    o.backoff_max = std::chrono::milliseconds(500);
    return o;
}

void run_until(asio::io_context& ioc, const bool& done, std::chrono::milliseconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) ioc.run_one_for(50ms);
}

asio::awaitable<void> wait_ready(pg::pool& p, asio::io_context& ioc, unsigned n = 1) {
    asio::steady_timer t(ioc);
    while (p.ready_connections() < n) {
        t.expires_after(5ms);
        co_await t.async_wait(asio::use_awaitable);
    }
}

// Runs the io_context until `n` of the pool's connections are ready.
bool until_ready(pg::pool& p, asio::io_context& ioc, unsigned n) {
    bool ready = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            co_await wait_ready(p, ioc, n);
            ready = true;
        },
        asio::detached);
    run_until(ioc, ready);
    return ready;
}

// Runs one statement and returns its result (the io_context runs meanwhile).
pg::result run_one(pg::pool& p, asio::io_context& ioc, std::size_t index,
                   std::vector<std::int32_t> ints = {}, std::int64_t key = 0) {
    pg::result out;
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            std::vector<pg::int4_buffer> bufs;
            for (auto v : ints) bufs.emplace_back(v);
            std::vector<pg::param> params;
            for (auto& b : bufs) params.push_back(b.as_param());
            out = co_await p.async_execute(index, params,
                                           pg::clock::now() + std::chrono::seconds(20), key);
            done = true;
        },
        asio::detached);
    run_until(ioc, done, 30s);
    BOOST_REQUIRE(done);
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pg_pool)

BOOST_AUTO_TEST_CASE(concurrent_statements_each_get_their_own_row) {
    std::vector<seeded_user> users;
    for (int i = 0; i < 20; ++i) users.push_back(seed_user());
    asio::io_context ioc(1);
    pg::pool pool(ioc, pool_options(2), projects::statements());
    pool.start();
    constexpr int rounds = 10;
    int finished = 0;
    bool done = false, ready = false;
    std::vector<std::string> errors;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            co_await wait_ready(pool, ioc, 2);
            ready = true;
        },
        asio::detached);
    run_until(ioc, ready);
    BOOST_REQUIRE(ready);
    // 200 updates in one turn over 2 connections: batched by row, each row's writes in
    // arrival order, so every row ends with the last round.
    for (int r = 0; r < rounds; ++r) {
        for (auto& u : users) {
            asio::co_spawn(
                ioc,
                [&, r, u]() -> asio::awaitable<void> {
                    pg::int4_buffer pid(static_cast<std::int32_t>(u.project_id)),
                        uid(static_cast<std::int32_t>(u.user_id));
                    std::string name =
                        "round " + std::to_string(r) + " of " + std::to_string(u.user_id);
                    unsigned char no = 0;
                    pg::param params[] = {pid.as_param(),        uid.as_param(),
                                          pg::param::text(name), pg::param::bytes(&no, 1),
                                          pg::param::none(),     pg::param::none(),
                                          pg::param::none()};
                    auto res = co_await pool.async_execute(
                        projects::update_statement, params,
                        pg::clock::now() + std::chrono::seconds(10), u.project_id);
                    if (res.outcome() != pg::result::kind::ok || res.rows() != 1 ||
                        res.get(0, 1) != name)
                        errors.push_back(name + ": " + res.message());
                    if (++finished == rounds * static_cast<int>(users.size())) done = true;
                },
                asio::detached);
        }
    }
    run_until(ioc, done);
    BOOST_REQUIRE(done);
    BOOST_TEST(errors.empty(), (errors.empty() ? "" : errors.front()));
    for (auto& u : users)
        BOOST_TEST(stores::project_field(u.project_id, "name") ==
                   "round " + std::to_string(rounds - 1) + " of " + std::to_string(u.user_id));
    pool.stop();
}

BOOST_AUTO_TEST_CASE(the_statement_timeout_answers_unavailable) {
    auto u = seed_user();
    asio::io_context ioc(1);
    auto opts = pool_options(1);
    pg::pool pool(ioc, opts, {{"sleepy", "SELECT pg_sleep(2)"}, {"quick", "SELECT 42"}});
    pool.start();
    pg::result slow, quick;
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            co_await wait_ready(pool, ioc);
            slow = co_await pool.async_execute(0, {}, pg::clock::now() + std::chrono::seconds(10));
            quick = co_await pool.async_execute(1, {}, pg::clock::now() + std::chrono::seconds(10));
            done = true;
        },
        asio::detached);
    run_until(ioc, done);
    BOOST_REQUIRE(done);
    BOOST_TEST((slow.outcome() == pg::result::kind::unavailable));
    BOOST_TEST(slow.sqlstate() == "57014");  // query_canceled by statement_timeout
    BOOST_TEST((quick.outcome() == pg::result::kind::ok));
    BOOST_TEST(quick.get(0, 0) == "42");
    pool.stop();
}

BOOST_AUTO_TEST_CASE(a_restarted_server_is_reconnected_and_nothing_is_answered_twice) {
    auto u = seed_user();
    asio::io_context ioc(1);
    auto opts = pool_options(2);
    opts.statement_timeout = std::chrono::milliseconds(5000);
    pg::pool pool(ioc, opts, projects::statements());
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 2));

    BOOST_REQUIRE(stores::pg_ctl("restart") == 0);
    // The pool notices the closed connections, reconnects with backoff, and serves again.
    int answers = 0;
    bool done = false;
    pg::result after;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            asio::steady_timer t(ioc);
            pg::int4_buffer pid(static_cast<std::int32_t>(u.project_id)),
                uid(static_cast<std::int32_t>(u.user_id));
            pg::param params[] = {pid.as_param(), uid.as_param()};
            for (int attempt = 0; attempt < 400; ++attempt) {
                after = co_await pool.async_execute(projects::select_statement, params,
                                                    pg::clock::now() + std::chrono::seconds(5));
                ++answers;
                if (after.outcome() == pg::result::kind::ok) break;
                t.expires_after(25ms);
                co_await t.async_wait(asio::use_awaitable);
            }
            done = true;
        },
        asio::detached);
    run_until(ioc, done, 30s);
    BOOST_REQUIRE(done);
    BOOST_TEST((after.outcome() == pg::result::kind::ok));
    BOOST_TEST(after.rows() == 1);
    BOOST_TEST(after.get(0, 1) == "Project of " + std::to_string(u.user_id));
    // Each await above resumed exactly once per call (a double answer would have crashed or
    // skewed the count against the loop).
    BOOST_TEST(answers >= 1);
    pool.stop();
}

// The watchdog measures from the statement's own start: B waits about 4.5 s for a lock
// (below the 6 s statement_timeout, with room for the time between taking the two locks)
// behind A, which waited 4.5 s; B is answered about 9 s after it was sent, past
// statement_timeout + 2 s from its sending, and must not be declared dead.
BOOST_AUTO_TEST_CASE(a_statement_queued_behind_a_long_lock_wait_is_not_killed) {
    auto a = seed_user(), b = seed_user();
    asio::io_context ioc(1);
    auto opts = pool_options(1);
    opts.statement_timeout = std::chrono::milliseconds(6000);
    pg::pool pool(ioc, opts,
                  {{"lock", "SELECT id FROM neptun_user_project WHERE id = $1 FOR UPDATE"}});
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 1));
    auto lock_a = hold_row_lock(a.project_id, 4.5);
    auto lock_b = hold_row_lock(b.project_id, 9.0);
    pg::result ra, rb;
    int finished = 0;
    bool done = false;
    auto started = std::chrono::steady_clock::now();
    for (auto [u, out] : {std::pair{&a, &ra}, std::pair{&b, &rb}}) {
        asio::co_spawn(
            ioc,
            [&, u = u, out = out]() -> asio::awaitable<void> {
                pg::int4_buffer id(static_cast<std::int32_t>(u->project_id));
                pg::param params[] = {id.as_param()};
                *out = co_await pool.async_execute(0, params,
                                                   pg::clock::now() + std::chrono::seconds(20));
                if (++finished == 2) done = true;
            },
            asio::detached);
    }
    run_until(ioc, done, 20s);
    BOOST_REQUIRE(done);
    BOOST_TEST((ra.outcome() == pg::result::kind::ok), ra.message());
    BOOST_TEST((rb.outcome() == pg::result::kind::ok), rb.message());
    BOOST_TEST((std::chrono::steady_clock::now() - started > 8s));
    BOOST_TEST(lock_a->wait_exit(10s) == 0);
    BOOST_TEST(lock_b->wait_exit(10s) == 0);
    pool.stop();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_recycle)

namespace {

auto reconnects() {
    return neptun::pg::global_stats().reconnects.load();
}

// Runs `index` until it succeeds (the pool reconnects with backoff meanwhile).
pg::result until_ok(pg::pool& p, asio::io_context& ioc, std::size_t index,
                    std::vector<std::int32_t> ints = {}) {
    pg::result r;
    for (int attempt = 0; attempt < 200; ++attempt) {
        r = run_one(p, ioc, index, ints);
        if (r.outcome() == pg::result::kind::ok) break;
        asio::steady_timer t(ioc);
        bool slept = false;
        t.expires_after(25ms);
        t.async_wait([&](auto) { slept = true; });
        run_until(ioc, slept);
    }
    return r;
}

// ALTER SYSTEM on the shared cluster, undone whatever the test's outcome.
struct read_only_cluster {
    read_only_cluster() {
        stores::psql("ALTER SYSTEM SET default_transaction_read_only = on", "postgres");
        stores::psql("SELECT pg_reload_conf()", "postgres");
    }
    ~read_only_cluster() { reset(); }
    void reset() {
        stores::psql("ALTER SYSTEM RESET default_transaction_read_only", "postgres");
        stores::psql("SELECT pg_reload_conf()", "postgres");
    }
};

}  // namespace

// 25006: a server that went read-only under an open session. The write is 503 and the
// session is replaced (a new connection would find the writable primary of a failover).
BOOST_AUTO_TEST_CASE(a_server_gone_read_only_recycles_the_connection) {
    auto u = seed_user();
    asio::io_context ioc(1);
    pg::pool pool(ioc, pool_options(1),
                  {{"touch",
                    "UPDATE neptun_user_project SET description = 'ro' WHERE id = $1 "
                    "RETURNING id"}});
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 1));
    auto id = static_cast<std::int32_t>(u.project_id);
    BOOST_REQUIRE((run_one(pool, ioc, 0, {id}).outcome() == pg::result::kind::ok));
    auto before = reconnects();
    pg::result r;
    {
        read_only_cluster ro;
        // The reload reaches the session asynchronously: the first refused write is the one.
        for (int i = 0; i < 200; ++i) {
            r = run_one(pool, ioc, 0, {id});
            if (r.outcome() != pg::result::kind::ok) break;
        }
        BOOST_TEST((r.outcome() == pg::result::kind::unavailable));
        ro.reset();
        r = until_ok(pool, ioc, 0, {id});
    }
    BOOST_TEST((r.outcome() == pg::result::kind::ok));
    BOOST_TEST(reconnects() > before);
    pool.stop();
}

// 0A000 "cached plan must not change result type": DDL behind a prepared SELECT *.
BOOST_AUTO_TEST_CASE(ddl_behind_a_prepared_statement_recycles_the_connection) {
    auto db = stores::fresh_database("recycle_plan");
    BOOST_REQUIRE(stores::migrate(db).exit_code == 0);
    auto u = seed_user(db);
    asio::io_context ioc(1);
    auto opts = pool_options(1);
    opts.conninfo = stores::database_url(db);
    pg::pool pool(ioc, opts, {{"star", "SELECT * FROM neptun_user_project WHERE id = $1"}});
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 1));
    auto id = static_cast<std::int32_t>(u.project_id);
    auto first = run_one(pool, ioc, 0, {id});
    BOOST_REQUIRE((first.outcome() == pg::result::kind::ok));
    auto before = reconnects();
    stores::psql("ALTER TABLE neptun_user_project ADD COLUMN extra integer", db);
    auto failed = run_one(pool, ioc, 0, {id});
    BOOST_TEST((failed.outcome() == pg::result::kind::unavailable), failed.message());
    auto after = until_ok(pool, ioc, 0, {id});
    BOOST_TEST((after.outcome() == pg::result::kind::ok));
    BOOST_TEST(after.rows() == 1);
    BOOST_TEST(reconnects() == before + 1);
    pool.stop();
}

// 57P01: the session is terminated by an administrator while a statement runs.
BOOST_AUTO_TEST_CASE(an_admin_shutdown_of_the_session_is_503_then_reconnected) {
    asio::io_context ioc(1);
    pg::pool pool(ioc, pool_options(1), {{"sleepy", "SELECT pg_sleep(5)"}, {"quick", "SELECT 1"}});
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 1));
    auto before = reconnects();
    pg::result slow;
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            slow = co_await pool.async_execute(0, {}, pg::clock::now() + std::chrono::seconds(20));
            done = true;
        },
        asio::detached);
    // Once the sleep runs, terminate it from outside.
    std::string killed;
    for (int i = 0; i < 200 && killed != "t"; ++i) {
        ioc.run_one_for(10ms);
        killed = stores::psql(
            "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
            "application_name = 'neptun-api' AND pid <> pg_backend_pid() AND query LIKE "
            "'%pg_sleep(5)%' AND state = 'active'",
            "postgres");
    }
    BOOST_REQUIRE(killed == "t");
    run_until(ioc, done);
    BOOST_REQUIRE(done);
    BOOST_TEST((slow.outcome() == pg::result::kind::unavailable));
    BOOST_TEST((until_ok(pool, ioc, 1).outcome() == pg::result::kind::ok));
    BOOST_TEST(reconnects() == before + 1);
    pool.stop();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pg_batches)

namespace {

struct update_outcome {
    pg::result::kind kind = pg::result::kind::unavailable;
    std::string name;
};

// Starts `names.size()` updates in the same turn of the event loop, so they form batches.
std::vector<update_outcome> update_together(pg::pool& pool, asio::io_context& ioc,
                                            const std::vector<seeded_user>& users,
                                            const std::vector<std::string>& names) {
    std::vector<update_outcome> out(names.size());
    std::size_t finished = 0;
    bool done = false;
    for (std::size_t i = 0; i < names.size(); ++i) {
        asio::co_spawn(
            ioc,
            [&, i]() -> asio::awaitable<void> {
                const auto& u = users[i % users.size()];
                pg::int4_buffer pid(static_cast<std::int32_t>(u.project_id)),
                    uid(static_cast<std::int32_t>(u.user_id));
                unsigned char no = 0;
                pg::param params[] = {
                    pid.as_param(),           uid.as_param(),    pg::param::text(names[i]),
                    pg::param::bytes(&no, 1), pg::param::none(), pg::param::none(),
                    pg::param::none()};
                auto r = co_await pool.async_execute(projects::update_statement, params,
                                                     pg::clock::now() + std::chrono::seconds(10),
                                                     u.project_id);
                out[i].kind = r.outcome();
                if (r.outcome() == pg::result::kind::ok && r.rows() == 1) out[i].name = r.get(0, 1);
                if (++finished == names.size()) done = true;
            },
            asio::detached);
    }
    run_until(ioc, done);
    BOOST_REQUIRE(done);
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(updates_arriving_together_commit_once_with_the_right_rows) {
    auto db = stores::fresh_database("batch_rows");
    BOOST_REQUIRE(stores::migrate(db).exit_code == 0);
    std::vector<seeded_user> users;
    for (int i = 0; i < 8; ++i) users.push_back(seed_user(db));
    asio::io_context ioc(1);
    auto opts = pool_options(1);
    opts.conninfo = stores::database_url(db);
    pg::pool pool(ioc, opts, projects::statements());
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 1));
    auto batches_before = neptun::pg::global_stats().batches.load();
    // 32 updates over 8 rows, in one turn: one batch; each row's last write is the 4th round.
    std::vector<std::string> names;
    for (int round = 0; round < 4; ++round)
        for (int i = 0; i < 8; ++i)
            names.push_back("r" + std::to_string(round) + "u" + std::to_string(i));
    auto out = update_together(pool, ioc, users, names);
    for (std::size_t i = 0; i < names.size(); ++i) {
        BOOST_TEST((out[i].kind == pg::result::kind::ok));
        BOOST_TEST(out[i].name == names[i]);
    }
    BOOST_TEST(neptun::pg::global_stats().batches.load() == batches_before + 1);
    for (int i = 0; i < 8; ++i)
        BOOST_TEST(stores::project_field(users[static_cast<std::size_t>(i)].project_id, "name",
                                         db) == "r3u" + std::to_string(i));
    pool.stop();
}

BOOST_AUTO_TEST_CASE(a_failing_statement_fails_alone) {
    auto db = stores::fresh_database("batch_poison");
    BOOST_REQUIRE(stores::migrate(db).exit_code == 0);
    stores::psql(
        "ALTER TABLE neptun_user_project ADD CONSTRAINT no_poison CHECK (name <> 'poison')", db);
    std::vector<seeded_user> users;
    for (int i = 0; i < 4; ++i) users.push_back(seed_user(db));
    asio::io_context ioc(1);
    auto opts = pool_options(1);
    opts.conninfo = stores::database_url(db);
    pg::pool pool(ioc, opts, projects::statements());
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 1));
    auto out = update_together(pool, ioc, users, {"fine0", "poison", "fine2", "fine3"});
    BOOST_TEST((out[0].kind == pg::result::kind::ok));
    BOOST_TEST((out[1].kind == pg::result::kind::sql_error));
    BOOST_TEST((out[2].kind == pg::result::kind::ok));
    BOOST_TEST((out[3].kind == pg::result::kind::ok));
    BOOST_TEST(
        stores::psql("SELECT string_agg(name, ',' ORDER BY id) FROM neptun_user_project", db) ==
        "fine0,Project of " + std::to_string(users[1].user_id) + ",fine2,fine3");
    pool.stop();
}

BOOST_AUTO_TEST_CASE(crossing_batches_on_two_connections_do_not_deadlock) {
    auto db = stores::fresh_database("batch_order");
    BOOST_REQUIRE(stores::migrate(db).exit_code == 0);
    std::vector<seeded_user> users;
    for (int i = 0; i < 6; ++i) users.push_back(seed_user(db));
    asio::io_context ioc(1);
    auto opts = pool_options(2);
    opts.conninfo = stores::database_url(db);
    opts.max_batch = 6;
    pg::pool pool(ioc, opts, projects::statements());
    pool.start();
    BOOST_REQUIRE(until_ready(pool, ioc, 2));
    // Rows in opposite orders, twice per turn, split over two connections: sorted by key,
    // every batch locks rows in the same order.
    for (int round = 0; round < 20; ++round) {
        std::vector<seeded_user> order = users;
        if (round % 2) std::reverse(order.begin(), order.end());
        std::vector<std::string> names;
        std::vector<seeded_user> doubled = order;
        doubled.insert(doubled.end(), users.rbegin(), users.rend());
        for (std::size_t i = 0; i < doubled.size(); ++i)
            names.push_back("n" + std::to_string(round));
        auto out = update_together(pool, ioc, doubled, names);
        for (auto& o : out) BOOST_TEST((o.kind == pg::result::kind::ok));
    }
    BOOST_TEST(stores::psql("SELECT count(*) FROM pg_stat_database WHERE datname = '" + db +
                                "' AND deadlocks > 0",
                            "postgres") == "0");
    pool.stop();
}

BOOST_AUTO_TEST_SUITE_END()
