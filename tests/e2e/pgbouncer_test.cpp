// PostgreSQL through PgBouncer in transaction mode (Debian's pgbouncer 1.18, which does not
// track prepared statements): with NEPTUN_PG_PREPARED=off the server sends unnamed
// statements, still pipelined, each batch or statement its own transaction.
#include <unistd.h>

#include <csignal>
#include <fstream>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

const char* pgbouncer_binary() {
    for (const char* p : {"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"})
        if (::access(p, X_OK) == 0) return p;
    return nullptr;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pgbouncer)

BOOST_AUTO_TEST_CASE(serves_reads_and_batched_writes_through_transaction_pooling) {
    auto binary = pgbouncer_binary();
    BOOST_REQUIRE_MESSAGE(binary, "pgbouncer is not installed (tests/run.sh installs it)");
    // PgBouncer refuses to run as root: its files go where the postgres user can read them.
    std::string dir = "/tmp/neptun-pgbouncer-" + std::to_string(::getpid());
    run_command({"/bin/mkdir", "-p", dir});
    int port = free_port();
    {
        std::ofstream ini(dir + "/pgbouncer.ini");
        ini << "[databases]\nneptun = host=127.0.0.1 port=" << stores::pg_port()
            << " dbname=neptun\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = " << port
            << "\nunix_socket_dir =\nauth_type = trust\nauth_file = " << dir
            << "/users.txt\npool_mode = transaction\ndefault_pool_size = 4\n"
               "max_client_conn = 200\nlogfile =\nadmin_users = postgres\n";
        std::ofstream users(dir + "/users.txt");
        users << "\"postgres\" \"\"\n";
    }
    run_command({"/bin/chmod", "-R", "a+rX", dir});
    std::vector<std::string> argv{binary, dir + "/pgbouncer.ini"};
    if (::getuid() == 0) argv.insert(argv.begin(), {"/sbin/runuser", "-u", "postgres", "--"});
    child_process bouncer(argv, {});
    BOOST_REQUIRE(bouncer.wait_for_log("process up", 10s));

    server_process srv(base_env({{"NEPTUN_DATABASE_URL", "postgresql://postgres@127.0.0.1:" +
                                                             std::to_string(port) + "/neptun"},
                                 {"NEPTUN_PG_PREPARED", "off"}}));
    BOOST_REQUIRE(srv.wait_ready());
    std::vector<seeded_user> users;
    for (int i = 0; i < 4; ++i) users.push_back(seed_user());
    for (const auto& u : users) {
        auto r = http_request(srv.port, "GET", u.path(), auth(u));
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 200);
    }
    // Pipelined PATCHes on several connections at once: batches and single statements.
    std::vector<std::unique_ptr<http_connection>> conns;
    for (const auto& u : users) {
        conns.push_back(std::make_unique<http_connection>(srv.port));
        std::string pipeline;
        for (int k = 0; k < 5; ++k)
            pipeline += build_request("PATCH", u.path(), json_auth(u),
                                      R"({"name":"via bouncer )" + std::to_string(k) + R"("})");
        conns.back()->send(pipeline);
    }
    for (std::size_t i = 0; i < users.size(); ++i) {
        for (int k = 0; k < 5; ++k) {
            auto r = conns[i]->read_response();
            BOOST_REQUIRE(r);
            BOOST_TEST(r->status == 200);
            BOOST_TEST(r->project_field("name") == "via bouncer " + std::to_string(k));
        }
        BOOST_TEST(stores::project_field(users[i].project_id, "name") == "via bouncer 4");
    }
    bouncer.signal(SIGTERM);
    bouncer.wait_exit(10s);
    run_command({"/bin/rm", "-rf", dir});
}

BOOST_AUTO_TEST_SUITE_END()
