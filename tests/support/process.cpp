#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

extern char** environ;

namespace neptun::test {
namespace {

std::vector<std::string> environment_with(const env_map& extra) {
    std::vector<std::string> out;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto key = kv.substr(0, kv.find('='));
        // The server under test sees exactly the NEPTUN_ settings the test gives it.
        if (key.starts_with("NEPTUN_") && !key.starts_with("NEPTUN_TEST_")) continue;
        if (extra.count(key)) continue;
        out.push_back(kv);
    }
    for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
    return out;
}

pid_t spawn(const std::vector<std::string>& argv, const env_map& env, int out_fd, int err_fd) {
    auto envs = environment_with(env);
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        int devnull = ::open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        if (out_fd >= 0) dup2(out_fd, 1);
        if (err_fd >= 0) dup2(err_fd, 2);
        execve(cargv[0], cargv.data(), cenv.data());
        // Fall back to a PATH search for plain command names.
        execvpe(cargv[0], cargv.data(), cenv.data());
        _exit(127);
    }
    return pid;
}

std::string read_all(int fd) {
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
}

}  // namespace

std::string binary_path() {
#ifdef NEPTUN_BINARY
    return NEPTUN_BINARY;
#else
    return "neptun-api";
#endif
}

run_result run_command(const std::vector<std::string>& argv, const env_map& env,
                       std::chrono::milliseconds timeout) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe failed");
    pid_t pid = spawn(argv, env, out_pipe[1], err_pipe[1]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    run_result r;
    std::thread err_reader([&] { r.err = read_all(err_pipe[0]); });
    std::thread killer;
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    killer = std::thread([&] {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, timeout, [&] { return done; })) ::kill(pid, SIGKILL);
    });
    r.out = read_all(out_pipe[0]);
    err_reader.join();
    int status = 0;
    waitpid(pid, &status, 0);
    {
        std::lock_guard lock(m);
        done = true;
    }
    cv.notify_all();
    killer.join();
    close(out_pipe[0]);
    close(err_pipe[0]);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

child_process::child_process(const std::vector<std::string>& argv, const env_map& env) {
    int err_pipe[2];
    if (pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    pid_ = spawn(argv, env, -1, err_pipe[1]);
    close(err_pipe[1]);
    reader_ = std::thread([this, fd = err_pipe[0]] { reader_loop(fd); });
}

child_process::~child_process() {
    if (!reaped_) {
        ::kill(pid_, SIGKILL);
        wait_exit(5s);
    }
    if (reader_.joinable()) reader_.join();
}

void child_process::reader_loop(int fd) {
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        std::lock_guard lock(mutex_);
        log_.append(buf, static_cast<std::size_t>(n));
        changed_.notify_all();
    }
    close(fd);
    std::lock_guard lock(mutex_);
    eof_ = true;
    changed_.notify_all();
}

void child_process::signal(int sig) {
    if (!reaped_) ::kill(pid_, sig);
}

bool child_process::running() {
    if (reaped_) return false;
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        reaped_ = true;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return true;
}

int child_process::wait_exit(std::chrono::milliseconds timeout) {
    if (reaped_) return exit_code_;
    // The stderr pipe closes when the process exits: await that, then reap.
    {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, timeout, [&] { return eof_; });
    }
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!running()) return exit_code_;
        ::poll(nullptr, 0, 10);  // the pipe closed: exit is imminent
    }
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
    exit_code_ = -1;
    return -1;
}

std::size_t child_process::count_in_log(const std::string& needle) {
    std::lock_guard lock(mutex_);
    std::size_t count = 0;
    for (auto pos = log_.find(needle); pos != std::string::npos; pos = log_.find(needle, pos + 1))
        ++count;
    return count;
}

bool child_process::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout,
                                 std::size_t count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
        std::size_t c = 0;
        for (auto pos = log_.find(needle); pos != std::string::npos;
             pos = log_.find(needle, pos + 1))
            ++c;
        return c >= count || eof_;
    }) && [&] {
        std::size_t c = 0;
        for (auto pos = log_.find(needle); pos != std::string::npos;
             pos = log_.find(needle, pos + 1))
            ++c;
        return c >= count;
    }();
}

std::string child_process::log() {
    std::lock_guard lock(mutex_);
    return log_;
}

namespace {
env_map with_defaults(env_map env) {
    env.emplace("NEPTUN_LISTEN", "127.0.0.1:0");
    env.emplace("NEPTUN_ADMIN_LISTEN", "127.0.0.1:0");
    env.emplace("NEPTUN_THREADS", "2");
    env.emplace("NEPTUN_LOG_LEVEL", "info");
    return env;
}

std::uint16_t field_value(const std::string& log, const std::string& key) {
    auto line = log.find("event=listening");
    if (line == std::string::npos) return 0;
    auto pos = log.find(" " + key + "=", line);
    if (pos == std::string::npos) return 0;
    return static_cast<std::uint16_t>(std::stoi(log.substr(pos + key.size() + 2)));
}
}  // namespace

server_process::server_process(env_map env, std::vector<std::string> args)
    : threads(static_cast<unsigned>(std::stoi(with_defaults(env)["NEPTUN_THREADS"]))),
      process(
          [&] {
              std::vector<std::string> argv{binary_path()};
              argv.insert(argv.end(), args.begin(), args.end());
              return argv;
          }(),
          with_defaults(env)) {
    if (!process.wait_for_log("event=listening", 20s))
        throw std::runtime_error("server did not start: " + process.log());
    auto log = process.log();
    port = field_value(log, "port");
    admin_port = field_value(log, "admin_port");
}

bool server_process::wait_ready(std::chrono::milliseconds timeout) {
    return process.wait_for_log("event=redis_connected", timeout, threads) &&
           process.wait_for_log("event=pg_connected", timeout, threads);
}

}  // namespace neptun::test
