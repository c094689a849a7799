// Redis as production runs it, through HTTP: readiness only after the handshake answers,
// back-off that grows, deadlines that hold, a Redis loading its data set.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

const std::string unavailable =
    R"({"statusCode":503,"message":"Service unavailable, retry later"})";

// A TCP server on loopback that accepts each connection and closes it at once (a proxy
// with no healthy backend, a Redis at maxclients), counting them.
class closing_server {
  public:
    closing_server() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0)
            throw std::runtime_error("closing_server: bind/listen failed");
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] {
            for (;;) {
                int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0) return;
                ++accepted;
                ::close(c);
            }
        });
    }
    ~closing_server() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    int port() const { return port_; }
    std::atomic<int> accepted{0};

  private:
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
};

std::string url_for(int port) {
    return "redis://127.0.0.1:" + std::to_string(port) + "/0";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_production)

BOOST_AUTO_TEST_CASE(a_server_that_accepts_and_closes_is_not_ready_and_backs_off) {
    closing_server closer;
    server_process srv(base_env({{"NEPTUN_REDIS_URL", url_for(closer.port())},
                                 {"NEPTUN_THREADS", "1"},
                                 {"NEPTUN_LOG_LEVEL", "debug"}}));
    BOOST_REQUIRE(srv.process.wait_for_log("event=listening", 10s));
    auto started = std::chrono::steady_clock::now();
    int polls = 0, not_ready = 0;
    while (std::chrono::steady_clock::now() - started < 3s) {
        auto r = http_request(srv.admin_port, "GET", "/readyz");
        ++polls;
        if (r && r->status == 503) ++not_ready;
        std::this_thread::sleep_for(20ms);
    }
    auto accepted = closer.accepted.load();
    BOOST_TEST_MESSAGE("connections in 3 s: " << accepted << ", /readyz polls: " << polls);
    BOOST_TEST(not_ready == polls);  // never ready, not once: no flapping
    // 50 ms doubling to 2 s (with jitter down to half): at most 8 attempts in 3 s, where a
    // back-off reset on every connect made one every 25-50 ms (about 80).
    BOOST_TEST(accepted >= 3);
    BOOST_TEST(accepted <= 10);
    auto u = seed_user();
    auto r = http_request(srv.port, "GET", u.path(), auth(u));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 503);
    BOOST_TEST(r->body == unavailable);
}

BOOST_AUTO_TEST_CASE(a_handler_timeout_shorter_than_the_redis_timeout_is_honoured) {
    redis_server redis;
    server_process srv(base_env({{"NEPTUN_REDIS_URL", redis.url()},
                                 {"NEPTUN_REDIS_TIMEOUT_MS", "2000"},
                                 {"NEPTUN_HANDLER_TIMEOUT_MS", "200"},
                                 // The lookup itself is under test: a cached session would
                                 // be answered without asking the paused Redis.
                                 {"NEPTUN_SESSION_CACHE", "off"},
                                 {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user("neptun", redis.port());
    BOOST_TEST(http_request(srv.port, "GET", u.path(), auth(u))->status == 200);
    auto paused = run_command({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "CLIENT",
                               "PAUSE", "1500", "ALL"});
    BOOST_REQUIRE(paused.out == "OK\n");
    auto started = std::chrono::steady_clock::now();
    auto r = http_request(srv.port, "GET", u.path(), auth(u));
    auto took = std::chrono::steady_clock::now() - started;
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 503);
    BOOST_TEST(r->body == unavailable);
    BOOST_TEST_MESSAGE("503 after "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                       << " ms");
    BOOST_TEST((took >= 190ms));
    BOOST_TEST((took < 600ms));  // the handler's 200 ms, not Redis's 2000 ms
    BOOST_REQUIRE(stores::redis({"PING"}, redis.port()) == "PONG");
    BOOST_TEST(http_request(srv.port, "GET", u.path(), auth(u))->status == 200);
}

BOOST_AUTO_TEST_CASE(a_redis_loading_its_data_set_is_not_ready_until_loaded) {
    char dir[] = "/tmp/neptun-redis-loading-XXXXXX";
    BOOST_REQUIRE(::mkdtemp(dir));
    seeded_user u;
    {
        // A data set with a session in it, saved to an RDB.
        redis_server writer({"--dir", dir, "--enable-debug-command", "local"});
        u = seed_user("neptun", writer.port());
        BOOST_REQUIRE(
            stores::redis({"DEBUG", "POPULATE", "20000", "filler", "64"}, writer.port()) == "OK");
        BOOST_REQUIRE(stores::redis({"SAVE"}, writer.port()) == "OK");
    }
    // A second server on that RDB, loading it slowly (100 µs a key: about 2 s) and
    // answering clients meanwhile, as a big data set does.
    int port = free_port();
    child_process loading({"/bin/sh", "-c",
                           "exec /usr/bin/redis-server --bind 127.0.0.1 --port " +
                               std::to_string(port) + " --dir " + dir +
                               " --save '' --appendonly no --key-load-delay 100"
                               " --loading-process-events-interval-bytes 1024 --logfile '' 1>&2"},
                          {});
    BOOST_REQUIRE(loading.wait_for_log("Loading RDB", 10s));
    server_process srv(base_env({{"NEPTUN_REDIS_URL", url_for(port)}, {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.process.wait_for_log("event=listening", 10s));
    int during = 0, ready_during = 0, lookups_503 = 0, lookups_other = 0;
    for (;;) {
        auto info = stores::redis({"INFO", "persistence"}, port);
        if (info.find("loading:1") == std::string::npos) break;
        ++during;
        auto ready = http_request(srv.admin_port, "GET", "/readyz");
        if (ready && ready->status == 200) ++ready_during;
        auto r = http_request(srv.port, "GET", u.path(), auth(u));
        if (r && r->status == 503)
            ++lookups_503;
        else
            ++lookups_other;
        std::this_thread::sleep_for(50ms);
    }
    BOOST_TEST_MESSAGE("polls while loading: " << during);
    BOOST_TEST(during >= 5);  // the loading lasted long enough to be seen
    BOOST_TEST(ready_during == 0);
    BOOST_TEST(lookups_other == 0);  // 503 while loading, never 401
    BOOST_TEST(srv.process.wait_for_log("event=redis_setup_failed reply=LOADING", 1s));
    BOOST_REQUIRE(srv.process.wait_for_log("event=redis_connected", 10s));
    auto r = http_request(srv.port, "GET", u.path(), auth(u));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    loading.signal(SIGKILL);
    loading.wait_exit(10s);
    run_command({"/bin/rm", "-rf", dir});
}

BOOST_AUTO_TEST_SUITE_END()
