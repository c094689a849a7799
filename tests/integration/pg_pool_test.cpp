// The libpq-on-Asio pool against a real PostgreSQL: many statements in flight on few
// connections, each answered with its own row; the server's statement timeout; recovery
// after `pg_ctl restart`.
#include <boost/asio.hpp>
#include <boost/test/unit_test.hpp>

#include "neptun/pg/pool.hpp"
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
        BOOST_TEST(stores::psql("SELECT name FROM neptun_user_project WHERE id = " +
                                std::to_string(u.project_id)) ==
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
    auto batches_before = neptun::net::global_metrics().pg_batches.load();
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
    BOOST_TEST(neptun::net::global_metrics().pg_batches.load() == batches_before + 1);
    for (int i = 0; i < 8; ++i)
        BOOST_TEST(stores::psql("SELECT name FROM neptun_user_project WHERE id = " +
                                    std::to_string(users[static_cast<std::size_t>(i)].project_id),
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
