// A Redis host name is resolved without stalling the I/O thread. The server runs in a
// network namespace this test makes (`ip netns`), whose resolv.conf points at a DNS
// responder of the test's own on the namespace's loopback that answers only after 1.5 s.
// While the name resolves, a request on the same (only) I/O thread is answered at once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

// Runs `f` on a thread of its own inside the namespace `ns` (setns affects that thread only).
template <typename F>
auto in_namespace(const std::string& ns, F f) {
    return std::async(std::launch::async, [ns, f]() mutable {
        int fd = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0)
            throw std::runtime_error("setns " + ns + " failed");
        ::close(fd);
        return f();
    });
}

// A DNS responder on 127.0.0.1:53 of the namespace: an A query for `name` gets 127.0.0.1
// after `delay`, anything else an empty answer after the same delay. Counts the queries.
class slow_dns {
  public:
    slow_dns(const std::string& ns, std::string name, std::chrono::milliseconds delay)
        : name_(std::move(name)), delay_(delay) {
        ready_ = in_namespace(ns, [this] {
            fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(53);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
                throw std::runtime_error("slow_dns: bind failed");
            return 0;
        });
        ready_.get();
        thread_ = std::thread([this] { serve(); });
    }
    ~slow_dns() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    std::atomic<int> queries{0};

  private:
    struct due {
        std::chrono::steady_clock::time_point at;
        std::string packet;
        sockaddr_in to;
    };
    std::string answer(const char* q, std::size_t n) {
        if (n < 17) return {};
        std::string qname;  // dotted
        std::size_t i = 12;
        while (i < n && q[i] != 0) {
            auto len = static_cast<unsigned char>(q[i]);
            if (!qname.empty()) qname += '.';
            qname.append(q + i + 1, std::min<std::size_t>(len, n - i - 1));
            i += len + 1;
        }
        std::size_t question_end = i + 5;  // the zero, QTYPE, QCLASS
        if (question_end > n) return {};
        unsigned qtype =
            (static_cast<unsigned char>(q[i + 1]) << 8) | static_cast<unsigned char>(q[i + 2]);
        bool match = qtype == 1 && qname == name_;
        std::string r(q, question_end);
        r[2] = static_cast<char>(0x81);  // response, recursion desired
        r[3] = static_cast<char>(0x80);  // recursion available, no error
        r[6] = 0;
        r[7] = match ? 1 : 0;  // ANCOUNT
        r[8] = r[9] = r[10] = r[11] = 0;
        if (match) {
            const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1};
            r.append(reinterpret_cast<const char*>(rr), sizeof rr);
        }
        return r;
    }
    void serve() {
        std::vector<due> queue;
        char buf[512];
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            ::poll(&p, 1, 10);
            if (p.revents & POLLIN) {
                sockaddr_in from{};
                socklen_t len = sizeof from;
                auto n =
                    ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
                if (n > 0) {
                    ++queries;
                    queries.notify_all();
                    auto r = answer(buf, static_cast<std::size_t>(n));
                    if (!r.empty())
                        queue.push_back({std::chrono::steady_clock::now() + delay_, r, from});
                }
            }
            auto now = std::chrono::steady_clock::now();
            for (auto it = queue.begin(); it != queue.end();) {
                if (it->at > now) {
                    ++it;
                    continue;
                }
                ::sendto(fd_, it->packet.data(), it->packet.size(), 0,
                         reinterpret_cast<const sockaddr*>(&it->to), sizeof it->to);
                it = queue.erase(it);
            }
        }
    }
    std::string name_;
    std::chrono::milliseconds delay_;
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::future<int> ready_;
    std::thread thread_;
};

struct network_namespace {
    network_namespace() : name("neptun-dns-" + std::to_string(::getpid())) {
        run_command({"/usr/sbin/ip", "netns", "del", name});
        if (run_command({"/usr/sbin/ip", "netns", "add", name}).exit_code != 0)
            throw std::runtime_error("ip netns add failed (needs root)");
        run_command({"/usr/sbin/ip", "-n", name, "link", "set", "lo", "up"});
        std::filesystem::create_directories("/etc/netns/" + name);
        std::ofstream("/etc/netns/" + name + "/resolv.conf")
            << "nameserver 127.0.0.1\noptions timeout:5 attempts:1\n";
    }
    ~network_namespace() {
        run_command({"/usr/sbin/ip", "netns", "del", name});
        std::filesystem::remove_all("/etc/netns/" + name);
    }
    std::string name;
};

// ip netns needs root; without it the case is reported as skipped (CI runs as root).
boost::test_tools::assertion_result running_as_root(boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result root(::geteuid() == 0);
    if (!root) root.message() << "ip netns needs root";
    return root;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_dns)

BOOST_AUTO_TEST_CASE(a_slow_name_lookup_does_not_stall_the_io_thread,
                     *boost::unit_test::precondition(running_as_root)) {
    network_namespace ns;
    slow_dns dns(ns.name, "redis.slow.test", 1500ms);
    int redis_port = free_port();
    auto in_ns = [&](std::vector<std::string> argv) {
        argv.insert(argv.begin(), {"/usr/sbin/ip", "netns", "exec", ns.name});
        return argv;
    };
    child_process redis(
        in_ns({"/bin/sh", "-c",
               "exec /usr/bin/redis-server --bind 127.0.0.1 --port " + std::to_string(redis_port) +
                   " --save '' --appendonly no --logfile '' 1>&2"}),
        {});
    BOOST_REQUIRE(redis.wait_for_log("Ready to accept connections", 10s));
    BOOST_REQUIRE(run_command(in_ns({"/usr/bin/redis-cli", "-p", std::to_string(redis_port), "SET",
                                     "neptun:session:dns-token", R"({"user":{"id":77}})"}))
                      .out == "OK\n");
    child_process srv(
        in_ns({binary_path(), "serve"}),
        {{"NEPTUN_REDIS_URL", "redis://redis.slow.test:" + std::to_string(redis_port) + "/0"},
         {"NEPTUN_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/neptun"},
         {"NEPTUN_LISTEN", "127.0.0.1:0"},
         {"NEPTUN_ADMIN_LISTEN", "127.0.0.1:0"},
         {"NEPTUN_THREADS", "1"}});
    BOOST_REQUIRE(srv.wait_for_log("event=listening", 10s));
    auto log = srv.log();
    auto port_at = log.find(" port=");
    BOOST_REQUIRE(port_at != std::string::npos);
    auto port = static_cast<std::uint16_t>(std::stoi(log.substr(port_at + 6)));
    // The first query has reached the responder: the name is resolving now, for 1.5 s.
    for (int seen = dns.queries; seen == 0; seen = dns.queries) dns.queries.wait(seen);
    auto asked = std::chrono::steady_clock::now();
    auto answered = in_namespace(ns.name, [&] {
                        auto r = http_request(port, "GET", "/api/users/1/projects/1");
                        return std::pair{r ? r->status : 0, std::chrono::steady_clock::now()};
                    }).get();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(answered.second - asked);
    BOOST_TEST_MESSAGE("answered in " << took.count() << " ms while the name was resolving");
    BOOST_TEST(answered.first == 401);
    BOOST_TEST((took < 500ms));  // not after the 1.5 s the resolver takes
    BOOST_TEST(srv.count_in_log("event=redis_connected") == 0u);  // it really was still resolving
    // Once resolved, the session is found through that name (403: user 77 is not user 1).
    BOOST_REQUIRE(srv.wait_for_log("event=redis_connected", 10s));
    auto status = in_namespace(ns.name, [&] {
                      auto r = http_request(port, "GET", "/api/users/1/projects/1",
                                            {{"Cookie", "neptun-session=dns-token"}});
                      return r ? r->status : 0;
                  }).get();
    BOOST_TEST(status == 403);
    srv.signal(SIGTERM);
    srv.wait_exit(10s);
    redis.signal(SIGKILL);
    redis.wait_exit(10s);
}

BOOST_AUTO_TEST_SUITE_END()
