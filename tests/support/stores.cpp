#include "support/stores.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <random>
#include <stdexcept>

namespace neptun::test {
namespace {

std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v ? v : fallback;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

std::string random_token() {
    static std::mt19937_64 rng(std::random_device{}());
    static constexpr char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string t;
    for (int i = 0; i < 32; ++i) t += alphabet[rng() % (sizeof alphabet - 1)];
    return t;
}

}  // namespace

int stores::redis_port() {
    return std::stoi(env_or("NEPTUN_TEST_REDIS_PORT", "6379"));
}
int stores::pg_port() {
    return std::stoi(env_or("NEPTUN_TEST_PG_PORT", "5432"));
}

std::string stores::redis_url() {
    return "redis://127.0.0.1:" + std::to_string(redis_port()) + "/0";
}

std::string stores::database_url(const std::string& db) {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(pg_port()) + "/" + db;
}

std::string stores::redis(const std::vector<std::string>& args, int port) {
    std::vector<std::string> argv{"redis-cli", "-p", std::to_string(port ? port : redis_port())};
    argv.insert(argv.end(), args.begin(), args.end());
    return trim(run_command(argv).out);
}

std::string stores::psql(const std::string& sql, const std::string& db) {
    auto r = run_command({"psql", "-h", "127.0.0.1", "-p", std::to_string(pg_port()), "-U",
                          "postgres", "-d", db, "-tAq", "-v", "ON_ERROR_STOP=1", "-c", sql});
    if (r.exit_code != 0) throw std::runtime_error("psql failed: " + r.err + " for: " + sql);
    return trim(r.out);
}

int stores::pg_ctl(const std::string& action, const std::string& mode) {
    std::vector<std::string> argv{
        "runuser",
        "-u",
        "postgres",
        "--",
        env_or("NEPTUN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin") + "/pg_ctl",
        "-D",
        env_or("NEPTUN_TEST_PG_DATA", ""),
        "-w",
        "-t",
        "60",
        "-m",
        mode,
        "-l",
        env_or("NEPTUN_TEST_PG_LOG", "/dev/null"),
        action};
    if (action != "stop") {
        argv.push_back("-o");
        argv.push_back(env_or("NEPTUN_TEST_PG_OPTIONS", ""));
    }
    if (getuid() != 0) argv.erase(argv.begin(), argv.begin() + 4);
    return run_command(argv, {}, 90s).exit_code;
}

run_result stores::migrate(const std::string& db) {
    return run_command({binary_path(), "migrate"}, {{"NEPTUN_DATABASE_URL", database_url(db)}});
}

std::string stores::project_field(std::int64_t project_id, const std::string& columns,
                                  const std::string& db) {
    return psql(
        "SELECT " + columns + " FROM neptun_user_project WHERE id = " + std::to_string(project_id),
        db);
}

std::string stores::project_body(std::int64_t project_id, const std::string& db) {
    // A timestamp as the server writes it, or null.
    auto stamp = [](const std::string& column) {
        return "coalesce('\"' || to_char(" + column +
               ", 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || '\"', 'null')";
    };
    return project_field(project_id,
                         "'{\"project\":{\"id\":' || id || ',\"name\":' || to_json(name)::text || "
                         "',\"description\":' || coalesce(to_json(description)::text, 'null') || "
                         "',\"project_type\":' || to_json(type::text)::text || "
                         "',\"programming_language\":' || to_json(main_language::text)::text || "
                         "',\"created_at\":' || " +
                             stamp("created_at") + " || ',\"updated_at\":' || " +
                             stamp("updated_at") +
                             " || ',\"neptun_user_id\":' || neptun_user_id || '}}'",
                         db);
}

std::string stores::fresh_database(const std::string& prefix) {
    static std::atomic<int> counter{0};
    std::string name = prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
    psql("DROP DATABASE IF EXISTS " + name, "postgres");
    psql("CREATE DATABASE " + name, "postgres");
    return name;
}

seeded_user seed_user(const std::string& db, int redis_port) {
    seeded_user u;
    u.token = random_token();
    auto ids = stores::psql(
        "WITH u AS (INSERT INTO neptun_user (primary_email) VALUES ('" + u.token +
            "@test.example') RETURNING id) "
            "INSERT INTO neptun_user_project (name, description, type, main_language, "
            "neptun_user_id, created_at, updated_at) SELECT 'Project of ' || id, 'first', "
            "'web-site', 'typescript', id, now() - interval '1 hour', now() - interval '1 hour' "
            "FROM u RETURNING neptun_user_id, id",
        db);
    auto bar = ids.find('|');
    u.user_id = std::stoll(ids.substr(0, bar));
    u.project_id = std::stoll(ids.substr(bar + 1));
    stores::redis(
        {"SET", "neptun:session:" + u.token,
         R"({"user":{"id":)" + std::to_string(u.user_id) +
             R"(,"primary_email":"x@test.example"},"loggedInAt":"2025-02-16T17:42:11.000Z"})",
         "EX", "3600"},
        redis_port);
    return u;
}

bool wait_for_update_blocked_on_lock() {
    for (int i = 0; i < 500; ++i)
        if (stores::psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                         "AND query LIKE '%UPDATE neptun_user_project%'") != "0")
            return true;
    return false;
}

std::unique_ptr<child_process> hold_row_lock(std::int64_t project_id, double seconds,
                                             bool by_update) {
    std::string id = std::to_string(project_id);
    std::string lock = by_update
                           ? "UPDATE neptun_user_project SET name = 'locker' WHERE id = " + id
                           : "SELECT id FROM neptun_user_project WHERE id = " + id + " FOR UPDATE";
    auto locker = std::make_unique<child_process>(
        std::vector<std::string>{"/usr/bin/psql",
                                 "-h",
                                 "127.0.0.1",
                                 "-p",
                                 std::to_string(stores::pg_port()),
                                 "-U",
                                 "postgres",
                                 "-d",
                                 "neptun",
                                 "-v",
                                 "ON_ERROR_STOP=1",
                                 "-o",
                                 "/dev/stderr",
                                 "-c",
                                 "BEGIN",
                                 "-c",
                                 lock,
                                 "-c",
                                 "SELECT 'locked'",
                                 "-c",
                                 "SELECT pg_sleep(" + std::to_string(seconds) + ")",
                                 "-c",
                                 by_update ? "ROLLBACK" : "COMMIT"},
        env_map{});
    if (!locker->wait_for_log("locked", 10s))
        throw std::runtime_error("could not lock the row: " + locker->log());
    return locker;
}

int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

redis_server::redis_server(std::vector<std::string> extra_args)
    : extra_args_(std::move(extra_args)), port_(free_port()) {
    start();
}

redis_server::~redis_server() {
    stop();
}

void redis_server::start() {
    std::vector<std::string> argv{"/usr/bin/redis-server",
                                  "--bind",
                                  "127.0.0.1",
                                  "--port",
                                  std::to_string(port_),
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--logfile",
                                  ""};
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    // redis-server logs to stdout; child_process captures stderr, so log there.
    process_ =
        std::make_unique<child_process>(std::vector<std::string>{"/bin/sh", "-c",
                                                                 [&] {
                                                                     std::string cmd = "exec";
                                                                     for (auto& a : argv)
                                                                         cmd += " '" + a + "'";
                                                                     return cmd + " 1>&2";
                                                                 }()},
                                        env_map{});
    if (!process_->wait_for_log("Ready to accept connections", 10s))
        throw std::runtime_error("redis-server did not start: " + process_->log());
}

void redis_server::stop() {
    if (!process_) return;
    process_->signal(SIGKILL);
    process_->wait_exit(10s);
    process_.reset();
}

}  // namespace neptun::test
