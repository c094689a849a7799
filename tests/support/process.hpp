// Test support: runs the real neptun-api binary (or any command) as a child process, with
// its stderr captured so a test can await a log line instead of sleeping.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace neptun::test {

using namespace std::chrono_literals;
using env_map = std::map<std::string, std::string>;

struct run_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// Runs argv to completion (killed after `timeout`), with `env` added to the environment.
run_result run_command(const std::vector<std::string>& argv, const env_map& env = {},
                       std::chrono::milliseconds timeout = 60s);

class child_process {
  public:
    child_process(const std::vector<std::string>& argv, const env_map& env);
    ~child_process();
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig);
    // Exit code, or -1 when it did not exit within `timeout` (it is then killed).
    int wait_exit(std::chrono::milliseconds timeout);
    bool running();
    // Waits until stderr has shown `needle` at least `count` times.
    bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout,
                      std::size_t count = 1);
    std::size_t count_in_log(const std::string& needle);
    std::string log();

  private:
    void reader_loop(int fd);
    pid_t pid_ = -1;
    int exit_code_ = -1;
    bool reaped_ = false;
    std::thread reader_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string log_;
    bool eof_ = false;
};

// The neptun-api binary serving on loopback: ports 0 unless `env` says otherwise.
class server_process {
  public:
    explicit server_process(env_map env, std::vector<std::string> args = {"serve"});
    std::uint16_t port = 0;
    std::uint16_t admin_port = 0;
    unsigned threads = 2;
    child_process process;
    // Waits until every thread's Redis and PostgreSQL connections are up.
    bool wait_ready(std::chrono::milliseconds timeout = 20s);
};

std::string binary_path();

}  // namespace neptun::test
