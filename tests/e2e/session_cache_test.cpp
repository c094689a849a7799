// The session cache against a real Redis of the test's own (CONTRACT.md §2): every change
// Redis reports reaches the answers, nothing is served while tracking is not confirmed,
// and a reply overtaken by its invalidation is never cached.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

using steady = std::chrono::steady_clock;

std::uint64_t cache_metric(const server_process& srv, const std::string& name) {
    auto v = metric(srv.admin_port, "neptun_session_cache_" + name);
    return v.empty() ? ~0ull : std::stoull(v);
}

// Awaits /metrics showing `name` above `than` (an event the server reports; no sleep).
bool await_metric_above(const server_process& srv, const std::string& name, std::uint64_t than,
                        std::chrono::milliseconds timeout = 5s) {
    auto deadline = steady::now() + timeout;
    while (steady::now() < deadline) {
        auto v = cache_metric(srv, name);
        if (v != ~0ull && v > than) return true;
        std::this_thread::sleep_for(5ms);  // leave the 2 cores to the server between polls
    }
    return false;
}

int status_of(const server_process& srv, const seeded_user& u) {
    auto r = http_request(srv.port, "GET", u.path(), auth(u));
    return r ? r->status : -1;
}

std::string session_key(const seeded_user& u) {
    return "neptun:session:" + u.token;
}

std::string session_of(std::int64_t user_id) {
    return R"({"user":{"id":)" + std::to_string(user_id) + "}}";
}

// A server on its own Redis, one I/O thread (one cache), once tracking is confirmed.
struct cached_server {
    redis_server redis;
    seeded_user user;
    server_process srv;
    explicit cached_server(std::vector<std::string> redis_args = {}, env_map extra = {})
        : redis(std::move(redis_args)),
          user(seed_user("neptun", redis.port())),
          srv(env_for(redis.url(), std::move(extra))) {}
    static env_map env_for(const std::string& url, env_map extra) {
        extra["NEPTUN_REDIS_URL"] = url;
        extra["NEPTUN_THREADS"] = "1";
        return base_env(extra);
    }
    bool ready() { return srv.wait_ready() && srv.process.wait_for_log("session_cache_on", 5s); }
    // Two lookups: the first fills the cache, the second is a hit.
    bool cached(const seeded_user& u) {
        auto hits = cache_metric(srv, "hits_total");
        return status_of(srv, u) == 200 && status_of(srv, u) == 200 &&
               cache_metric(srv, "hits_total") == hits + 1;
    }
    std::string redis_cli(const std::vector<std::string>& args) {
        return stores::redis(args, redis.port());
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(session_cache)

BOOST_AUTO_TEST_CASE(a_deleted_session_is_401_once_its_invalidation_arrives) {
    cached_server s;
    BOOST_REQUIRE(s.ready());
    BOOST_REQUIRE(s.cached(s.user));
    BOOST_TEST(cache_metric(s.srv, "entries") == 1u);
    auto seen = cache_metric(s.srv, "invalidations_total");
    BOOST_REQUIRE(s.redis_cli({"DEL", session_key(s.user)}) == "1");
    BOOST_REQUIRE(await_metric_above(s.srv, "invalidations_total", seen));
    BOOST_TEST(status_of(s.srv, s.user) == 401);
    BOOST_TEST(cache_metric(s.srv, "entries") == 0u);
}

BOOST_AUTO_TEST_CASE(a_session_set_to_another_user_is_403) {
    cached_server s;
    BOOST_REQUIRE(s.ready());
    BOOST_REQUIRE(s.cached(s.user));
    auto seen = cache_metric(s.srv, "invalidations_total");
    s.redis_cli({"SET", session_key(s.user), session_of(s.user.user_id + 1000), "EX", "600"});
    BOOST_REQUIRE(await_metric_above(s.srv, "invalidations_total", seen));
    BOOST_TEST(status_of(s.srv, s.user) == 403);
}

// Redis's expiry invalidations are best-effort (a key nobody touches may linger): with
// active expiry off it sends none at all, and the TTL read with the value must hold alone.
BOOST_AUTO_TEST_CASE(an_entry_never_outlives_the_keys_ttl) {
    cached_server s({"--enable-debug-command", "yes"});
    BOOST_REQUIRE(s.ready());
    BOOST_REQUIRE(s.redis_cli({"DEBUG", "SET-ACTIVE-EXPIRE", "0"}) == "OK");
    auto seen = cache_metric(s.srv, "invalidations_total");
    s.redis_cli({"PEXPIRE", session_key(s.user), "1500"});
    BOOST_REQUIRE(await_metric_above(s.srv, "invalidations_total", seen));  // PEXPIRE is a write
    auto cached_at = steady::now();
    BOOST_REQUIRE(s.cached(s.user));
    auto invalidations = cache_metric(s.srv, "invalidations_total");
    std::this_thread::sleep_until(cached_at + 1700ms);  // the TTL passing is the event here
    BOOST_TEST(status_of(s.srv, s.user) == 401);
    // Redis said nothing before the lookup found the key gone (the lazy expiry it caused
    // may invalidate it afterwards): the 401 came from the TTL kept with the entry.
    BOOST_TEST(cache_metric(s.srv, "invalidations_total") <= invalidations + 1);
}

BOOST_AUTO_TEST_CASE(flushdb_makes_every_cached_session_401) {
    cached_server s;
    BOOST_REQUIRE(s.ready());
    auto other = seed_user("neptun", s.redis.port());
    BOOST_REQUIRE(s.cached(s.user));
    BOOST_REQUIRE(s.cached(other));
    BOOST_TEST(cache_metric(s.srv, "entries") == 2u);
    auto flushes = cache_metric(s.srv, "flushes_total");
    BOOST_REQUIRE(s.redis_cli({"FLUSHDB"}) == "OK");
    BOOST_REQUIRE(await_metric_above(s.srv, "flushes_total", flushes));
    BOOST_TEST(cache_metric(s.srv, "entries") == 0u);
    BOOST_TEST(status_of(s.srv, s.user) == 401);
    BOOST_TEST(status_of(s.srv, other) == 401);
}

// The invalidation connection killed: the cache is not used until tracking is back, so a
// session deleted meanwhile (its invalidation went nowhere) is 401 at once.
BOOST_AUTO_TEST_CASE(killed_invalidations_bypass_the_cache_until_tracking_is_back) {
    cached_server s;
    BOOST_REQUIRE(s.ready());
    BOOST_REQUIRE(s.cached(s.user));
    BOOST_TEST(s.redis_cli({"CLIENT", "KILL", "TYPE", "pubsub"}) == "1");
    BOOST_REQUIRE(s.srv.process.wait_for_log("session_cache_paused", 5s));
    s.redis_cli({"DEL", session_key(s.user)});
    BOOST_TEST(status_of(s.srv, s.user) == 401);
    // Tracking comes back on its own; the session, set again, is cached again.
    s.redis_cli({"SET", session_key(s.user), session_of(s.user.user_id), "EX", "600"});
    BOOST_REQUIRE_MESSAGE(s.srv.process.wait_for_log("session_cache_on", 10s, 2),
                          s.srv.process.log());
    BOOST_TEST(s.cached(s.user));
}

BOOST_AUTO_TEST_CASE(a_redis_restart_flushes_the_cache) {
    cached_server s;
    BOOST_REQUIRE(s.ready());
    BOOST_REQUIRE(s.cached(s.user));
    s.redis.stop();
    s.redis.start();  // empty: no save file
    // The same token, now another user's: a stale entry would answer 200.
    s.redis_cli({"SET", session_key(s.user), session_of(s.user.user_id + 1000), "EX", "600"});
    BOOST_REQUIRE(s.srv.process.wait_for_log("session_cache_on", 15s, 2));
    BOOST_TEST(status_of(s.srv, s.user) == 403);
}

BOOST_AUTO_TEST_CASE(a_redis_without_client_tracking_turns_the_cache_off_and_stays_right) {
    cached_server s({"--rename-command", "CLIENT", ""});
    BOOST_REQUIRE(s.srv.wait_ready());
    BOOST_REQUIRE(s.srv.process.wait_for_log("session_cache_off", 5s));
    BOOST_TEST(s.srv.process.count_in_log("session_cache_on") == 0u);
    BOOST_TEST(status_of(s.srv, s.user) == 200);
    BOOST_TEST(status_of(s.srv, s.user) == 200);
    BOOST_TEST(cache_metric(s.srv, "hits_total") == 0u);
    s.redis_cli({"DEL", session_key(s.user)});
    BOOST_TEST(status_of(s.srv, s.user) == 401);  // no invalidation to wait for: no cache
}

BOOST_AUTO_TEST_CASE(a_flood_of_unknown_tokens_leaves_cached_sessions_cached) {
    cached_server s({}, {{"NEPTUN_SESSION_CACHE_ENTRIES", "2"}});
    BOOST_REQUIRE(s.ready());
    BOOST_REQUIRE(s.cached(s.user));
    for (int i = 0; i < 300; ++i) {
        seeded_user stranger = s.user;
        stranger.token = "unknown-" + std::to_string(i);
        BOOST_REQUIRE(status_of(s.srv, stranger) == 401);
    }
    BOOST_TEST(cache_metric(s.srv, "entries") == 1u);
    auto hits = cache_metric(s.srv, "hits_total");
    BOOST_TEST(status_of(s.srv, s.user) == 200);
    BOOST_TEST(cache_metric(s.srv, "hits_total") == hits + 1);
}

// The race: the session changes after Redis answered our GET but before the reply reaches
// us, and its invalidation (on the other connection) arrives first. A proxy of the test's
// holds the data connection's replies; the value read is answered, never cached.
BOOST_AUTO_TEST_CASE(an_invalidation_that_overtakes_the_reply_wins) {
    // A TCP proxy to Redis: connections that subscribe are passed through, the others'
    // replies are held while `hold` is set.
    struct holding_proxy {
        int listen_fd = -1, port = 0, upstream = 0;
        std::mutex m;
        std::condition_variable changed;
        bool hold = false;
        std::string held;
        int held_to = -1;
        std::thread acceptor;
        std::vector<std::thread> threads;  // under m
        std::vector<int> fds;              // under m
        explicit holding_proxy(int upstream_port) : upstream(upstream_port) {
            listen_fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
                ::listen(listen_fd, 16) != 0)
                throw std::runtime_error("proxy: bind/listen");
            socklen_t len = sizeof a;
            ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
            port = ntohs(a.sin_port);
            acceptor = std::thread([this] { accept_loop(); });
        }
        ~holding_proxy() {
            ::shutdown(listen_fd, SHUT_RDWR);
            acceptor.join();  // no thread or fd is added after it
            std::vector<std::thread> pumps;
            {
                std::lock_guard l(m);
                for (int fd : fds) ::shutdown(fd, SHUT_RDWR);
                pumps.swap(threads);
            }
            for (auto& t : pumps) t.join();
            ::close(listen_fd);
            for (int fd : fds) ::close(fd);
        }
        void accept_loop() {
            for (;;) {
                int client = ::accept(listen_fd, nullptr, nullptr);
                if (client < 0) return;
                int server = ::socket(AF_INET, SOCK_STREAM, 0);
                sockaddr_in a{};
                a.sin_family = AF_INET;
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                a.sin_port = htons(static_cast<std::uint16_t>(upstream));
                if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                    ::close(client);
                    ::close(server);
                    continue;
                }
                auto pubsub = std::make_shared<std::atomic<bool>>(false);
                std::lock_guard l(m);
                fds.insert(fds.end(), {client, server});
                threads.emplace_back([=, this] { pump(client, server, pubsub, false); });
                threads.emplace_back([=, this] { pump(server, client, pubsub, true); });
            }
        }
        void pump(int from, int to, std::shared_ptr<std::atomic<bool>> pubsub, bool replies) {
            char buf[16384];
            for (;;) {
                auto n = ::read(from, buf, sizeof buf);
                if (n <= 0) {
                    ::shutdown(to, SHUT_WR);
                    return;
                }
                std::string_view data(buf, static_cast<std::size_t>(n));
                if (!replies && data.find("SUBSCRIBE") != std::string_view::npos) *pubsub = true;
                std::unique_lock l(m);
                if (replies && hold && !*pubsub) {
                    held += data;
                    held_to = to;
                    changed.notify_all();
                    continue;
                }
                l.unlock();
                if (::write(to, data.data(), data.size()) != n) return;
            }
        }
        bool await_held(std::string_view needle) {
            std::unique_lock l(m);
            return changed.wait_for(l, 5s, [&] { return held.find(needle) != std::string::npos; });
        }
        void release() {
            std::lock_guard l(m);
            hold = false;
            if (held_to >= 0 && !held.empty()) {
                auto w = ::write(held_to, held.data(), held.size());
                (void)w;
            }
            held.clear();
        }
    };

    redis_server redis;
    auto u = seed_user("neptun", redis.port());
    holding_proxy proxy(redis.port());
    server_process srv(
        base_env({{"NEPTUN_REDIS_URL", "redis://127.0.0.1:" + std::to_string(proxy.port) + "/0"},
                  {"NEPTUN_THREADS", "1"}}));
    BOOST_REQUIRE(srv.wait_ready());
    BOOST_REQUIRE(srv.process.wait_for_log("session_cache_on", 5s));
    {
        std::lock_guard l(proxy.m);
        proxy.hold = true;
    }
    maybe_response first;
    std::thread request([&] { first = http_request(srv.port, "GET", u.path(), auth(u)); });
    // Redis answered the GET with the session of u; the reply is held by the proxy.
    bool held = proxy.await_held(R"("id":)" + std::to_string(u.user_id));
    auto seen = cache_metric(srv, "invalidations_total");
    stores::redis({"SET", session_key(u), session_of(u.user_id + 1000), "EX", "600"}, redis.port());
    bool invalidated = await_metric_above(srv, "invalidations_total", seen);
    proxy.release();
    request.join();
    BOOST_REQUIRE(held);
    BOOST_REQUIRE(invalidated);
    BOOST_REQUIRE(first);
    BOOST_TEST(first->status == 200);  // the value Redis had when it read it
    // Not cached: the session is now another user's (and that is what gets cached).
    BOOST_TEST(status_of(srv, u) == 403);
    BOOST_TEST(status_of(srv, u) == 403);
}

BOOST_AUTO_TEST_CASE(session_cache_off_sends_every_lookup_to_redis) {
    cached_server s({}, {{"NEPTUN_SESSION_CACHE", "off"}});
    BOOST_REQUIRE(s.srv.wait_ready());
    BOOST_TEST(status_of(s.srv, s.user) == 200);
    BOOST_TEST(status_of(s.srv, s.user) == 200);
    BOOST_TEST(cache_metric(s.srv, "hits_total") == 0u);
    BOOST_TEST(cache_metric(s.srv, "misses_total") == 0u);
    BOOST_TEST(s.srv.process.count_in_log("session_cache_on") == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
