// Test support: the Redis and PostgreSQL that tests/run.sh started on loopback (their ports
// come in NEPTUN_TEST_* variables), helpers to seed and inspect them, and a Redis of a
// test's own that it can stop and start.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace neptun::test {

struct stores {
    static int redis_port();
    static int pg_port();
    static std::string redis_url();
    static std::string database_url(const std::string& db = "neptun");
    // redis-cli against the shared Redis (or `port`); returns stdout without the last newline.
    static std::string redis(const std::vector<std::string>& args, int port = 0);
    // psql -tAq: one value per line, columns separated by '|'.
    static std::string psql(const std::string& sql, const std::string& db = "neptun");
    // pg_ctl stop/start/restart on the shared cluster (started by tests/run.sh). Mode
    // "immediate" stops it the way a crash would (no checkpoint, connections cut).
    static int pg_ctl(const std::string& action, const std::string& mode = "fast");
    // Runs `neptun-api migrate` on `db`.
    static run_result migrate(const std::string& db = "neptun");
    // A fresh database with the schema; returns its name.
    static std::string fresh_database(const std::string& prefix);
    // One column of a project's row as psql prints it ("" when there is no such row), e.g.
    // project_field(u.project_id, "name"); `columns` may be an expression.
    static std::string project_field(std::int64_t project_id, const std::string& columns,
                                     const std::string& db = "neptun");
    // The exact body the server answers for a project as its row stands now:
    // {"project":{"id":..,"name":..,...}}, built by PostgreSQL from the row.
    static std::string project_body(std::int64_t project_id, const std::string& db = "neptun");
};

// A user with one project and a session; ids and token for the test to use.
struct seeded_user {
    std::int64_t user_id = 0;
    std::int64_t project_id = 0;
    std::string token;
    std::string cookie() const { return "neptun-session=" + token; }
    std::string path() const {
        return "/api/users/" + std::to_string(user_id) + "/projects/" + std::to_string(project_id);
    }
};
seeded_user seed_user(const std::string& db = "neptun", int redis_port = 0);

// Holds a lock on one project's row for `seconds` from a psql session of its own, then
// releases it (COMMIT after SELECT ... FOR UPDATE, or ROLLBACK after an UPDATE with
// `by_update`). Returns once the lock is held; the process ends when it is released.
std::unique_ptr<child_process> hold_row_lock(std::int64_t project_id, double seconds,
                                             bool by_update = false);

// Waits until a statement updating a project waits for a row lock in PostgreSQL (a request
// is then in flight behind hold_row_lock); false if none does within about 5 s.
bool wait_for_update_blocked_on_lock();

// A redis-server of the test's own on a free loopback port.
class redis_server {
  public:
    explicit redis_server(std::vector<std::string> extra_args = {});
    ~redis_server();
    int port() const { return port_; }
    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
    void start();
    void stop();

  private:
    std::vector<std::string> extra_args_;
    int port_;
    std::unique_ptr<child_process> process_;
};

int free_port();

}  // namespace neptun::test
