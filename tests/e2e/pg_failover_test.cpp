// Multi-host database URLs: every host resolved with Asio into a hostaddr list, and the
// socket followed when libpq moves to the next host inside one PQconnectPoll.
#include "e2e/common.hpp"

using namespace neptun::test;

BOOST_AUTO_TEST_SUITE(pg_failover)

// 127.0.0.1:<nothing listens> first, then `localhost` (a name, resolved by Asio; it may
// give ::1 first, where nothing listens either): served from the working host at once,
// not after a connect timeout.
BOOST_AUTO_TEST_CASE(a_multi_host_url_whose_first_host_is_down_is_served_from_the_next) {
    auto down = free_port();
    auto url = "postgresql://postgres@127.0.0.1:" + std::to_string(down) +
               ",localhost:" + std::to_string(stores::pg_port()) +
               "/neptun?target_session_attrs=read-write";
    auto started = std::chrono::steady_clock::now();
    server_process srv(base_env({{"NEPTUN_DATABASE_URL", url},
                                 {"NEPTUN_PG_CONNECT_TIMEOUT_MS", "3000"},
                                 {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.wait_ready(10s));
    BOOST_TEST((std::chrono::steady_clock::now() - started < 2500ms));
    auto u = seed_user();
    auto r = http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":"second"})");
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(stores::psql("SELECT name FROM neptun_user_project WHERE id = " +
                            std::to_string(u.project_id)) == "second");
    // The pool's connections are on the second host: none waited for a connect timeout.
    BOOST_TEST(srv.process.count_in_log("connect timeout") == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
