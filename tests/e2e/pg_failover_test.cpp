// Multi-host database URLs: every host resolved with Asio into a hostaddr list, and the
// socket followed when libpq moves to the next host inside one PQconnectPoll.
#include <stdlib.h>
#include <unistd.h>

#include <fstream>

#include "e2e/common.hpp"
#include "e2e/write_load.hpp"

using namespace neptun::test;

namespace {

using steady = std::chrono::steady_clock;

// PostgreSQL refuses to run as root: its tools run as `postgres` then.
run_result as_postgres(std::vector<std::string> argv) {
    if (::getuid() == 0) argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
    return run_command(argv, {}, 120s);
}

std::string pg_bin(const std::string& tool) {
    const char* bin = ::getenv("NEPTUN_TEST_PG_BIN");
    return std::string(bin ? bin : "/usr/lib/postgresql/15/bin") + "/" + tool;
}

std::string psql_at(int port, const std::string& sql, const std::string& db = "neptun") {
    auto r = run_command({"psql", "-h", "127.0.0.1", "-p", std::to_string(port), "-U", "postgres",
                          "-d", db, "-tAq", "-v", "ON_ERROR_STOP=1", "-c", sql});
    if (r.exit_code != 0) throw std::runtime_error("psql failed: " + r.err + " for: " + sql);
    while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
}

// A primary and a synchronous streaming standby (pg_basebackup) of the test's own, on two
// free loopback ports; both stopped and removed at the end.
struct replicated_pair {
    std::string root;
    int primary_port = free_port(), standby_port = free_port();

    replicated_pair() {
        try {
            create();
        } catch (...) {
            cleanup();
            throw;
        }
    }
    void create() {
        char dir[] = "/tmp/neptun-failover-XXXXXX";
        if (!::mkdtemp(dir)) throw std::runtime_error("mkdtemp");
        root = dir;
        run_command({"/bin/chmod", "755", root});
        if (::getuid() == 0) run_command({"/bin/chown", "postgres:postgres", root});
        auto init = as_postgres({pg_bin("initdb"), "-D", root + "/primary", "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"});
        if (init.exit_code != 0) throw std::runtime_error("initdb: " + init.err);
        std::ofstream(root + "/primary/postgresql.conf", std::ios::app) << "max_connections = 60\n";
        start("primary", primary_port);
        psql_at(primary_port, "CREATE DATABASE neptun", "postgres");
        auto backup = as_postgres({pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p",
                                   std::to_string(primary_port), "-U", "postgres", "-D",
                                   root + "/standby", "-R", "-X", "stream", "-c", "fast"});
        // -c fast: a spread checkpoint could keep it waiting for minutes on a busy machine.
        if (backup.exit_code != 0) throw std::runtime_error("pg_basebackup: " + backup.err);
        start("standby", standby_port);
        // From now on commits wait for the standby: an acknowledged write is on both.
        psql_at(primary_port, "ALTER SYSTEM SET synchronous_standby_names = '*'", "postgres");
        psql_at(primary_port, "SELECT pg_reload_conf()", "postgres");
        for (int i = 0; i < 200; ++i) {
            if (psql_at(primary_port, "SELECT sync_state FROM pg_stat_replication", "postgres") ==
                "sync")
                return;
            ::usleep(50000);
        }
        throw std::runtime_error("the standby did not become synchronous");
    }
    ~replicated_pair() { cleanup(); }
    void cleanup() {
        if (root.empty()) return;
        for (const char* node : {"primary", "standby"})
            as_postgres(
                {pg_bin("pg_ctl"), "-D", root + "/" + node, "-m", "immediate", "-w", "stop"});
        run_command({"/bin/rm", "-rf", root});
        root.clear();
    }
    void start(const std::string& node, int port) {
        auto r = as_postgres({pg_bin("pg_ctl"), "-D", root + "/" + node, "-l",
                              root + "/" + node + ".log", "-w", "-t", "60", "start", "-o",
                              "-h 127.0.0.1 -p " + std::to_string(port) + " -k " + root});
        if (r.exit_code != 0) throw std::runtime_error("pg_ctl start " + node + ": " + r.err);
    }
    int pg_ctl(const std::string& node, std::vector<std::string> args) {
        std::vector<std::string> argv{pg_bin("pg_ctl"), "-D", root + "/" + node};
        argv.insert(argv.end(), args.begin(), args.end());
        return as_postgres(argv).exit_code;
    }
};

}  // namespace

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
    BOOST_TEST(stores::project_field(u.project_id, "name") == "second");
    // The pool's connections are on the second host: none waited for a connect timeout.
    BOOST_TEST(srv.process.count_in_log("connect timeout") == 0u);
}

// The server on host=primary,standby target_session_attrs=read-write; under a steady write
// load the primary is stopped as by a crash and the standby promoted. Only 200 and 503
// are answered, every acknowledged write is on the new primary, and writes come back
// within a measured bound.
BOOST_AUTO_TEST_CASE(a_promoted_standby_takes_the_writes_and_loses_no_acknowledged_one) {
    replicated_pair pair;
    auto migrated = run_command(
        {binary_path(), "migrate"},
        {{"NEPTUN_DATABASE_URL",
          "postgresql://postgres@127.0.0.1:" + std::to_string(pair.primary_port) + "/neptun"}});
    BOOST_REQUIRE(migrated.exit_code == 0);
    constexpr int clients = 4;
    std::vector<seeded_user> users;
    for (int i = 0; i < clients; ++i) {
        seeded_user u;
        u.token = "failover-" + std::to_string(::getpid()) + "-" + std::to_string(i);
        auto ids =
            psql_at(pair.primary_port,
                    "WITH u AS (INSERT INTO neptun_user (primary_email) VALUES ('" + u.token +
                        "@test.example') RETURNING id) INSERT INTO neptun_user_project "
                        "(name, description, type, main_language, neptun_user_id) SELECT "
                        "'p', '0', 'web-site', 'typescript', id FROM u RETURNING "
                        "neptun_user_id, id");
        auto bar = ids.find('|');
        u.user_id = std::stoll(ids.substr(0, bar));
        u.project_id = std::stoll(ids.substr(bar + 1));
        stores::redis({"SET", "neptun:session:" + u.token,
                       R"({"user":{"id":)" + std::to_string(u.user_id) + "}}", "EX", "600"});
        users.push_back(u);
    }
    auto conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(pair.primary_port) + "," +
                    std::to_string(pair.standby_port) +
                    " dbname=neptun user=postgres target_session_attrs=read-write";
    server_process srv(base_env({{"NEPTUN_DATABASE_URL", conninfo},
                                 {"NEPTUN_PG_CONNECT_TIMEOUT_MS", "1000"},
                                 {"NEPTUN_THREADS", "2"}}));
    BOOST_REQUIRE(srv.wait_ready());
    write_load load(srv, users);
    BOOST_REQUIRE_MESSAGE(load.await_ok(100), "no 100 writes before the stop");
    BOOST_REQUIRE(pair.pg_ctl("primary", {"-m", "immediate", "-w", "stop"}) == 0);
    load.mark_fault();  // the primary is gone now
    BOOST_REQUIRE(pair.pg_ctl("standby", {"-w", "promote"}) == 0);
    auto promoted_at = steady::now();
    BOOST_REQUIRE_MESSAGE(load.await_ok(load.ok() + 100), "no 100 writes after the promotion");
    load.stop();
    auto back_after = load.back_after();
    auto after_promote =
        std::chrono::duration_cast<std::chrono::milliseconds>(load.first_ok_after() - promoted_at);
    BOOST_TEST_MESSAGE("failover: first 200 " << back_after.count() << " ms after the stop, "
                                              << after_promote.count()
                                              << " ms after pg_ctl promote returned");
    BOOST_TEST(load.other() == 0);
    BOOST_TEST(load.unavailable() > 0);
    BOOST_TEST((back_after < 8s));
    load.check_survived([&](std::int64_t project) {
        return psql_at(
            pair.standby_port,
            "SELECT description FROM neptun_user_project WHERE id = " + std::to_string(project));
    });
}

// TLS through the async connect: sslmode=verify-full against a CA made by the test (the
// server certificate names localhost), and a wrong CA: not ready, 503.
BOOST_AUTO_TEST_CASE(tls_verify_full_with_the_test_ca_and_a_wrong_ca_is_not_ready) {
    struct tls_cluster {
        std::string root;
        int port = free_port();
        ~tls_cluster() {
            if (root.empty()) return;
            as_postgres({pg_bin("pg_ctl"), "-D", root + "/data", "-m", "immediate", "-w", "stop"});
            run_command({"/bin/rm", "-rf", root});
        }
    } pg;
    char dir[] = "/tmp/neptun-tls-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(dir));
    pg.root = dir;
    auto sh = [&](const std::string& cmd) {
        auto r = run_command({"/bin/sh", "-c", "cd " + pg.root + " && " + cmd});
        BOOST_REQUIRE_MESSAGE(r.exit_code == 0, cmd << ": " << r.err);
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 "
       "-subj /CN=neptun-test-ca 2>/dev/null");
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.crt -days 1 "
       "-subj /CN=neptun-other-ca 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
       "-subj /CN=localhost 2>/dev/null");
    sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext && openssl x509 -req -in "
       "server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile "
       "ext 2>/dev/null");
    sh("chmod 755 . && chmod 600 server.key && chmod 644 ca.crt other-ca.crt server.crt");
    if (::getuid() == 0) sh("chown -R postgres:postgres .");
    auto init = as_postgres({pg_bin("initdb"), "-D", pg.root + "/data", "-U", "postgres",
                             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"});
    BOOST_REQUIRE_MESSAGE(init.exit_code == 0, init.err);
    std::ofstream(pg.root + "/data/postgresql.conf", std::ios::app)
        << "ssl = on\nssl_cert_file = '" << pg.root << "/server.crt'\nssl_key_file = '" << pg.root
        << "/server.key'\nmax_connections = 40\n";
    auto started = as_postgres({pg_bin("pg_ctl"), "-D", pg.root + "/data", "-l",
                                pg.root + "/postgres.log", "-w", "-t", "60", "start", "-o",
                                "-h 127.0.0.1 -p " + std::to_string(pg.port) + " -k " + pg.root});
    BOOST_REQUIRE_MESSAGE(started.exit_code == 0, started.err);
    psql_at(pg.port, "CREATE DATABASE neptun", "postgres");
    auto plain = "postgresql://postgres@127.0.0.1:" + std::to_string(pg.port) + "/neptun";
    BOOST_REQUIRE(
        run_command({binary_path(), "migrate"}, {{"NEPTUN_DATABASE_URL", plain}}).exit_code == 0);
    seeded_user u;
    u.token = "tls-" + std::to_string(::getpid());
    auto ids =
        psql_at(pg.port, "WITH u AS (INSERT INTO neptun_user (primary_email) VALUES ('" + u.token +
                             "@test.example') RETURNING id) INSERT INTO neptun_user_project (name, "
                             "type, main_language, neptun_user_id) SELECT 'over tls', 'web-site', "
                             "'typescript', id FROM u RETURNING neptun_user_id, id");
    auto bar = ids.find('|');
    u.user_id = std::stoll(ids.substr(0, bar));
    u.project_id = std::stoll(ids.substr(bar + 1));
    stores::redis({"SET", "neptun:session:" + u.token,
                   R"({"user":{"id":)" + std::to_string(u.user_id) + "}}", "EX", "600"});
    auto url = [&](const std::string& ca) {
        return "postgresql://postgres@localhost:" + std::to_string(pg.port) +
               "/neptun?sslmode=verify-full&sslrootcert=" + pg.root + "/" + ca;
    };
    {
        server_process srv(
            base_env({{"NEPTUN_DATABASE_URL", url("ca.crt")}, {"NEPTUN_THREADS", "1"}}));
        BOOST_REQUIRE(srv.wait_ready());
        auto r = http_request(srv.port, "GET", u.path(), auth(u));
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 200);
        BOOST_TEST(r->project_field("name") == "over tls");
        BOOST_TEST(psql_at(pg.port,
                           "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a "
                           "USING (pid) WHERE a.application_name = 'neptun-api'",
                           "postgres") == "t");
    }
    server_process wrong(
        base_env({{"NEPTUN_DATABASE_URL", url("other-ca.crt")}, {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(wrong.process.wait_for_log("event=pg_down", 10s));
    BOOST_TEST(wrong.process.count_in_log("certificate verify failed") > 0u);
    auto ready = http_request(wrong.admin_port, "GET", "/readyz");
    BOOST_REQUIRE(ready);
    BOOST_TEST(ready->status == 503);
    BOOST_TEST(ready->body == R"({"status":"not ready","draining":false,"down":["postgres"]})");
    auto r = http_request(wrong.port, "GET", u.path(), auth(u));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 503);
}

BOOST_AUTO_TEST_SUITE_END()
