#include "neptun/redis/client.hpp"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <array>
#include <functional>
#include <random>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>

#include "neptun/net/log.hpp"
#include "neptun/net/metrics.hpp"
#include "neptun/redis/stats.hpp"

namespace neptun::redis {

namespace log = net::log;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

connection_options machine_options(const options& o) {
    connection_options m;
    m.username = o.where.username;
    m.password = o.where.password;
    m.auth = o.where.auth;
    m.db = o.where.db;
    m.check_role_master = !o.where.sentinels.empty();
    m.handshake_timeout = o.connect_timeout;
    m.health_interval = o.health_interval;
    m.health_timeout = o.health_timeout;
    return m;
}

std::unique_ptr<ssl::context> make_tls_context(const tls_options& t) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx->set_verify_mode(ssl::verify_peer);
    if (t.ca_file.empty())
        ctx->set_default_verify_paths();
    else
        ctx->load_verify_file(t.ca_file);
    if (!t.cert_file.empty()) ctx->use_certificate_chain_file(t.cert_file);
    if (!t.key_file.empty()) ctx->use_private_key_file(t.key_file, ssl::context::pem);
    return ctx;
}

void set_keepalive(tcp::socket& s) {
    boost::system::error_code ec;
    s.set_option(tcp::no_delay(true), ec);
    s.set_option(asio::socket_base::keep_alive(true), ec);
    // A peer that vanished (no RST) is found in about a minute, not two hours.
    int idle = 30, interval = 10, count = 3;
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

bool is_ip_address(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

}  // namespace

bool check_tls(const tls_options& tls, std::string& why) {
    try {
        make_tls_context(tls);
        return true;
    } catch (const boost::system::system_error& e) {
        why = "cannot load the TLS files: " + e.code().message();
        return false;
    }
}

struct client::impl : std::enable_shared_from_this<client::impl> {
    impl(asio::io_context& io, options o)
        : ioc(io),
          opts(std::move(o)),
          machine(machine_options(opts)),
          tick_timer(io),
          wake(io),
          retry_timer(io),
          deadline_timer(io),
          rng(std::random_device{}()),
          tracking_retry(io) {
        if (opts.cache) cache = std::make_unique<session_cache>(*opts.cache);
        machine.retry().min = opts.backoff_min;
        machine.retry().max = opts.backoff_max;
        if (opts.where.tls) tls = make_tls_context(opts.tls);
        net::global_readiness().mark_down(net::readiness::redis);
    }

    ~impl() {
        if (marked_down) net::global_readiness().mark_up(net::readiness::redis);
    }

    asio::io_context& ioc;
    options opts;
    connection_machine machine;
    std::unique_ptr<ssl::context> tls;
    asio::steady_timer tick_timer;      // the machine's next_timer()
    asio::steady_timer wake;            // the writer waits on it while there is nothing to send
    asio::steady_timer retry_timer;     // back-off between connections
    asio::steady_timer deadline_timer;  // connect and TLS handshake deadlines
    clock::time_point armed = clock::time_point::max();
    std::function<void()> close_socket;  // closes the current data connection, if any
    std::function<void()> close_watch;   // closes the Sentinel subscription, if any
    std::uint64_t deadline_seq = 0;
    bool writer_idle = false;
    bool stopped = false;
    bool marked_down = true;
    bool ever_ready = false;
    bool skip_backoff = false;  // a +switch-master said where the master went: go at once
    // The master run() is serving (Sentinel only): a +switch-master naming it again
    // (sentinels repeat themselves, or a late push) must not drop a good connection.
    std::optional<std::pair<std::string, std::uint16_t>> serving;
    std::mt19937 rng;
    connection_machine::counters seen;  // the machine's counters already added to /metrics
    std::string write_buffer;
    std::array<char, 16384> read_buffer;

    // --- the session cache's second connection (see track()) ---
    std::unique_ptr<session_cache> cache;
    std::optional<tcp::endpoint> data_endpoint;  // the server the data connection is on
    std::string data_host;                       // its name, for TLS
    std::uint64_t pair_gen = 0;                  // data connections ended so far
    std::uint64_t tracking_gen = 0;              // the newest invalidation connection attempt
    bool tracking_refused = false;               // this data connection's Redis refused tracking
    std::function<void()> close_invalidation;
    asio::steady_timer tracking_retry;

    // --- after every event: deliver answers, follow readiness, close, re-arm the timer ---
    void after_machine() {
        machine.deliver([this](net::completion<reply> h, reply rep, clock::time_point submitted) {
            auto& m = global_stats();
            m.latency.observe(std::chrono::duration<double>(clock::now() - submitted).count());
            if (rep.type == reply::kind::unavailable || rep.type == reply::kind::error)
                m.errors.fetch_add(1, std::memory_order_relaxed);
            // Resume the waiting coroutine from the io_context, never from inside our loop.
            asio::post(ioc, [h = std::move(h), rep = std::move(rep)]() mutable {
                std::move(h)(std::move(rep));
            });
        });
        const auto& st = machine.stats();
        auto& gm = global_stats();
        if (st.timeouts != seen.timeouts || st.late_replies != seen.late_replies ||
            st.health_timeouts != seen.health_timeouts) {
            gm.timeouts.fetch_add(st.timeouts - seen.timeouts, std::memory_order_relaxed);
            gm.late_replies.fetch_add(st.late_replies - seen.late_replies,
                                      std::memory_order_relaxed);
            gm.health_timeouts.fetch_add(st.health_timeouts - seen.health_timeouts,
                                         std::memory_order_relaxed);
            seen = st;
        }
        if (machine.ready() && marked_down) {
            marked_down = false;
            net::global_readiness().mark_up(net::readiness::redis);
            if (ever_ready) global_stats().reconnects.fetch_add(1);
            ever_ready = true;
            armed = clock::time_point::max();  // the handshake's deadline is moot now
            tick_timer.cancel();
            log::info("redis_connected", {{"db", opts.where.db}});
            if (cache) start_tracking();
        }
        if (machine.must_drop() && close_socket) {
            log::warn("redis_drop", {{"reason", *machine.must_drop()}});
            if (!machine.handshake_error().empty())
                log::error("redis_setup_failed", {{"reply", machine.handshake_error()}});
            auto close = std::move(close_socket);
            close_socket = nullptr;
            close();
            return;
        }
        if (machine.has_output() && writer_idle) wake.cancel();
        // next_timer() walks the waiting callers: only when no wake-up is armed. A caller
        // with an earlier deadline arms its own (start_command); a stale wake-up costs one
        // empty on_timer.
        if (armed == clock::time_point::max()) arm(machine.next_timer());
    }

    void arm(clock::time_point t) {
        if (t == clock::time_point::max() || t >= armed) return;
        armed = t;
        tick_timer.expires_at(t);
        tick_timer.async_wait([self = shared_from_this(), t](boost::system::error_code ec) {
            if (ec || self->armed != t) return;
            self->armed = clock::time_point::max();
            self->guarded("tick", [&] {
                self->machine.on_timer(clock::now());
                self->after_machine();
            });
        });
    }

    // A plain handler's exception would escape io_context::run() and take the I/O thread
    // down; it is a bug, so it is logged and the connection dropped (run() then answers
    // every queued caller and reconnects).
    template <typename F>
    void guarded(const char* where, F&& f) {
        try {
            f();
        } catch (...) {
            log::error("redis_handler_failed", {{"where", where}, {"error", describe_current()}});
            if (close_socket) std::exchange(close_socket, nullptr)();
        }
    }

    static std::string describe_current() {
        try {
            throw;
        } catch (const std::exception& e) {
            return e.what();
        } catch (...) {
            return "unknown exception";
        }
    }

    // Closes the socket if the operation in progress outlasts `d` (connect, TLS handshake).
    void start_deadline(std::chrono::milliseconds d) {
        deadline_timer.expires_after(d);
        deadline_timer.async_wait(
            [self = shared_from_this(), seq = ++deadline_seq](boost::system::error_code ec) {
                if (ec || seq != self->deadline_seq || !self->close_socket) return;
                self->guarded("deadline", [&] { self->close_socket(); });
            });
    }
    void end_deadline() {
        ++deadline_seq;
        deadline_timer.cancel();
    }

    // --- one connection: reader and writer until either stops ---
    template <typename Stream>
    asio::awaitable<void> reader(Stream& s, std::string& why) {
        for (;;) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(read_buffer), use_tuple);
            if (ec) {
                if (why.empty())
                    why = ec == asio::error::eof ? "closed by the server" : ec.message();
                if (close_socket) std::exchange(close_socket, nullptr)();
                co_return;
            }
            machine.on_bytes(read_buffer.data(), n, clock::now());
            if (machine.must_drop() && why.empty()) why = *machine.must_drop();
            after_machine();
            if (!close_socket) co_return;
        }
    }

    template <typename Stream>
    asio::awaitable<void> writer(Stream& s, std::string& why) {
        for (;;) {
            if (!machine.has_output()) {
                writer_idle = true;
                wake.expires_at(clock::time_point::max());
                co_await wake.async_wait(use_tuple);
                writer_idle = false;
                if (!close_socket) co_return;
                continue;
            }
            machine.take_output(write_buffer);
            auto [ec, n] = co_await asio::async_write(s, asio::buffer(write_buffer), use_tuple);
            if (ec) {
                if (why.empty()) why = ec.message();
                if (close_socket) std::exchange(close_socket, nullptr)();
                wake.cancel();
                co_return;
            }
        }
    }

    template <typename Stream>
    asio::awaitable<void> serve(Stream& s, std::string& why) {
        machine.on_open(clock::now());
        after_machine();
        co_await (reader(s, why) || writer(s, why));
        writer_idle = false;
    }

    // Resolves (on Asio's resolver thread, never blocking this one) and tries every address.
    asio::awaitable<bool> connect_tcp(tcp::socket& sock, const std::string& host,
                                      std::uint16_t port, std::string& why) {
        tcp::resolver resolver(ioc);
        close_socket = [&resolver] { resolver.cancel(); };
        start_deadline(opts.connect_timeout);
        auto [rec, results] =
            co_await resolver.async_resolve(host, std::to_string(port), use_tuple);
        end_deadline();
        close_socket = nullptr;
        if (rec) {
            why = "resolve " + host + ": " + rec.message();
            co_return false;
        }
        for (const auto& entry : results) {
            if (stopped) co_return false;
            boost::system::error_code ec;
            sock = tcp::socket(ioc);
            sock.open(entry.endpoint().protocol(), ec);
            if (ec) continue;
            close_socket = [&sock] {
                boost::system::error_code ignored;
                sock.close(ignored);
            };
            start_deadline(opts.connect_timeout);
            auto [cec] = co_await sock.async_connect(entry.endpoint(), use_tuple);
            end_deadline();
            bool timed_out = !sock.is_open();
            close_socket = nullptr;
            if (!cec && !timed_out) {
                set_keepalive(sock);
                co_return true;
            }
            why = "connect " + entry.endpoint().address().to_string() + ":" + std::to_string(port) +
                  ": " + (timed_out ? "timed out" : cec.message());
        }
        if (why.empty()) why = "resolve " + host + ": no address";
        co_return false;
    }

    asio::awaitable<void> serve_tcp(const std::string& host, std::uint16_t port, std::string& why) {
        tcp::socket sock(ioc);
        if (!co_await connect_tcp(sock, host, port, why)) co_return;
        boost::system::error_code eec;
        data_endpoint = sock.remote_endpoint(eec);
        if (eec) data_endpoint.reset();
        data_host = host;
        if (!tls) {
            close_socket = [&sock] {
                boost::system::error_code ignored;
                sock.close(ignored);
            };
            co_await serve(sock, why);
            close_socket = nullptr;
            co_return;
        }
        ssl::stream<tcp::socket> stream(std::move(sock), *tls);
        const auto& name = opts.tls.server_name.empty() ? host : opts.tls.server_name;
        if (!is_ip_address(name)) SSL_set_tlsext_host_name(stream.native_handle(), name.c_str());
        stream.set_verify_callback(ssl::host_name_verification(name));
        close_socket = [&stream] {
            boost::system::error_code ignored;
            stream.lowest_layer().close(ignored);
        };
        start_deadline(opts.connect_timeout);
        auto [hec] = co_await stream.async_handshake(ssl::stream_base::client, use_tuple);
        end_deadline();
        if (hec || !stream.lowest_layer().is_open()) {
            why = "TLS handshake: " + (hec ? hec.message() : std::string("timed out"));
            close_socket = nullptr;
            co_return;
        }
        co_await serve(stream, why);
        close_socket = nullptr;
    }

    asio::awaitable<void> serve_unix(std::string& why) {
        asio::local::stream_protocol::socket sock(ioc);
        close_socket = [&sock] {
            boost::system::error_code ignored;
            sock.close(ignored);
        };
        start_deadline(opts.connect_timeout);
        auto [ec] = co_await sock.async_connect(
            asio::local::stream_protocol::endpoint(opts.where.unix_path), use_tuple);
        end_deadline();
        if (ec || !sock.is_open()) {
            why = "connect " + opts.where.unix_path + ": " + (ec ? ec.message() : "timed out");
            close_socket = nullptr;
            co_return;
        }
        co_await serve(sock, why);
        close_socket = nullptr;
    }

    // --- Sentinel: ask each sentinel in turn for the master's address ---
    // Sends `commands` on a fresh connection to one sentinel and returns its replies.
    asio::awaitable<std::optional<std::pair<std::string, std::uint16_t>>> ask_sentinels(
        std::string& why) {
        const auto& w = opts.where;
        for (const auto& s : w.sentinels) {
            if (stopped) co_return std::nullopt;
            tcp::socket sock(ioc);
            std::string err;
            if (!co_await connect_tcp(sock, s.host, s.port, err)) {
                why = "sentinel " + err;
                continue;
            }
            std::string out;
            std::size_t expected = 1;
            if (!w.sentinel_password.empty()) {
                append_command(out, {"AUTH", w.sentinel_password});
                ++expected;
            }
            append_command(out, {"SENTINEL", "get-master-addr-by-name", w.master_name});
            close_socket = [&sock] {
                boost::system::error_code ignored;
                sock.close(ignored);
            };
            start_deadline(opts.connect_timeout);
            auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(out), use_tuple);
            resp_reader rr;
            std::optional<std::pair<std::string, std::uint16_t>> found;
            std::string answer_error;
            while (!wec && expected > 0) {
                auto [rec, n] = co_await sock.async_read_some(asio::buffer(read_buffer), use_tuple);
                if (rec) break;
                rr.feed(read_buffer.data(), n);
                bool broken = false;
                while (expected > 0) {
                    auto r = rr.next(broken);
                    if (!r) break;
                    --expected;
                    if (r->type == REDIS_REPLY_ERROR)
                        answer_error = error_word(std::string_view(r->str, r->len));
                    else if (expected == 0)
                        found = parse_master_addr(*r);
                }
                if (broken) break;
            }
            end_deadline();
            close_socket = nullptr;
            if (found) co_return found;
            why = "sentinel " + s.host + ":" + std::to_string(s.port) + ": " +
                  (!answer_error.empty() ? answer_error
                   : expected == 0       ? "does not know master " + w.master_name
                                         : "no answer");
        }
        co_return std::nullopt;
    }

    // A subscription to +switch-master on one sentinel after another: when the master
    // moves, the data connection is closed and the sentinels asked again at once. This is
    // the client's second kind of connection, for pushes only (pubsub messages are read by
    // the same RESP decoder, and none is matched to a caller).
    asio::awaitable<void> watch_sentinels() {
        auto self = shared_from_this();
        const auto& w = opts.where;
        std::size_t next = 0;
        std::array<char, 4096> buf;
        asio::steady_timer pause(ioc);
        while (!stopped) {
            const auto& s = w.sentinels[next++ % w.sentinels.size()];
            tcp::resolver resolver(ioc);
            auto [rec, results] =
                co_await resolver.async_resolve(s.host, std::to_string(s.port), use_tuple);
            tcp::socket sock(ioc);
            bool up = false;
            if (!rec) {
                for (const auto& e : results) {
                    sock = tcp::socket(ioc);
                    asio::steady_timer limit(ioc, opts.connect_timeout);
                    auto outcome = co_await (sock.async_connect(e.endpoint(), use_tuple) ||
                                             limit.async_wait(use_tuple));
                    if (outcome.index() == 0 && !std::get<0>(std::get<0>(outcome)) &&
                        sock.is_open()) {
                        up = true;
                        break;
                    }
                }
            }
            if (up && !stopped) {
                try {
                    set_keepalive(sock);
                    close_watch = [&sock] {
                        boost::system::error_code ignored;
                        sock.close(ignored);
                    };
                    std::string out;
                    // Replies owed before pushes: AUTH's, then SUBSCRIBE's; an error in either
                    // means this sentinel will never tell us anything: try the next one.
                    int setup = 1;
                    if (!w.sentinel_password.empty()) {
                        append_command(out, {"AUTH", w.sentinel_password});
                        ++setup;
                    }
                    append_command(out, {"SUBSCRIBE", "+switch-master"});
                    auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(out), use_tuple);
                    resp_reader rr;
                    asio::steady_timer ping(ioc);
                    auto heard = clock::now();
                    bool dead = wec.failed();
                    while (!dead && !stopped) {
                        // A sentinel that vanished without a FIN would otherwise leave us
                        // subscribed to nothing: PING it (allowed while subscribed).
                        ping.expires_after(opts.health_interval);
                        auto outcome =
                            co_await (sock.async_read_some(asio::buffer(buf), use_tuple) ||
                                      ping.async_wait(use_tuple));
                        if (outcome.index() == 1) {
                            if (clock::now() - heard > opts.health_interval + opts.health_timeout) {
                                log::warn("redis_sentinel_watch",
                                          {{"sentinel", s.host + ":" + std::to_string(s.port)},
                                           {"reason", "no answer to PING"}});
                                break;
                            }
                            std::string p;
                            append_command(p, {"PING"});
                            auto [pec, pn] =
                                co_await asio::async_write(sock, asio::buffer(p), use_tuple);
                            if (pec) break;
                            continue;
                        }
                        auto [ec, n] = std::get<0>(outcome);
                        if (ec) break;
                        heard = clock::now();
                        rr.feed(buf.data(), n);
                        bool broken = false;
                        while (auto r = rr.next(broken)) {
                            if (setup > 0) {
                                --setup;
                                if (r->type == REDIS_REPLY_ERROR) {
                                    log::warn("redis_sentinel_watch",
                                              {{"sentinel", s.host + ":" + std::to_string(s.port)},
                                               {"reply", std::string(error_word(
                                                             std::string_view(r->str, r->len)))}});
                                    dead = true;
                                    break;
                                }
                                continue;
                            }
                            if (auto moved = parse_switch_master(*r, w.master_name))
                                switched(*moved);
                        }
                        if (broken) break;
                    }
                    close_watch = nullptr;
                } catch (...) {
                    close_watch = nullptr;
                    log::error("redis_watch_failed", {{"error", describe_current()}});
                }
            }
            if (stopped) co_return;
            pause.expires_after(std::chrono::milliseconds(500));
            co_await pause.async_wait(use_tuple);
        }
    }

    void switched(const std::pair<std::string, std::uint16_t>& to) {
        global_stats().failovers.fetch_add(1, std::memory_order_relaxed);
        log::warn(
            "redis_failover",
            {{"master", opts.where.master_name}, {"new_host", to.first}, {"new_port", to.second}});
        if (serving && *serving == to) return;  // already there
        // Back-off (and the failure count) is about servers that fail; this one moved.
        if (close_socket) {
            skip_backoff = true;
            std::exchange(close_socket, nullptr)();
        }
        retry_timer.cancel();
    }

    // --- the session cache: CLIENT TRACKING in RESP2 REDIRECT mode ---
    // Once the data connection is ready, a second connection to the same server (the same
    // address, never a name resolved anew: a REDIRECT id means something only on the server
    // that issued it) asks CLIENT ID and subscribes to __redis__:invalidate; then the data
    // connection turns on `CLIENT TRACKING on REDIRECT <id> BCAST PREFIX <session prefix>`,
    // and only its +OK makes the cache usable. BCAST, not the default mode: Redis keeps no
    // per-key state for us, so GETs of unknown tokens (a flood of them) cannot fill its
    // tracking table and evict real sessions' tracking; a write to any session key reaches
    // us whether we read it or not, which for sessions (written at sign-in) is little.
    // Either connection ending makes the cache unusable and flushes it.
    void start_tracking() {
        if (tracking_refused) return;
        auto on_exit = [](std::exception_ptr e) {
            if (e) log::error("session_cache_failed", {{"error", "tracking loop ended"}});
        };
        asio::co_spawn(ioc, track(pair_gen), on_exit);
    }

    void end_pair() {
        ++pair_gen;
        tracking_refused = false;
        if (cache && cache->usable()) cache->set_usable(false);
        tracking_retry.cancel();
        ++tracking_gen;  // voids the attempt in progress, and its CLIENT TRACKING reply
        data_endpoint.reset();
        if (close_invalidation) std::exchange(close_invalidation, nullptr)();
    }

    asio::awaitable<void> track(std::uint64_t gen) {
        auto self = shared_from_this();
        backoff wait{opts.backoff_min, opts.backoff_max, 0};
        while (!stopped && gen == pair_gen && !tracking_refused) {
            std::string why;
            const auto attempt = ++tracking_gen;
            auto current = [&] { return !stopped && gen == pair_gen && attempt == tracking_gen; };
            try {
                if (!opts.where.unix_path.empty()) {
                    asio::local::stream_protocol::socket sock(ioc);
                    if (co_await connect_with_deadline(
                            sock, asio::local::stream_protocol::endpoint(opts.where.unix_path)))
                        co_await invalidations(sock, current, why);
                    else
                        why = "connect " + opts.where.unix_path + " failed";
                } else if (data_endpoint) {
                    tcp::socket sock(ioc);
                    if (!co_await connect_with_deadline(sock, *data_endpoint)) {
                        why = "connect " + data_endpoint->address().to_string() + " failed";
                    } else if (!tls) {
                        set_keepalive(sock);
                        co_await invalidations(sock, current, why);
                    } else {
                        set_keepalive(sock);
                        ssl::stream<tcp::socket> stream(std::move(sock), *tls);
                        const auto& name =
                            opts.tls.server_name.empty() ? data_host : opts.tls.server_name;
                        if (!is_ip_address(name))
                            SSL_set_tlsext_host_name(stream.native_handle(), name.c_str());
                        stream.set_verify_callback(ssl::host_name_verification(name));
                        asio::steady_timer limit(ioc, opts.connect_timeout);
                        auto hs =
                            co_await (stream.async_handshake(ssl::stream_base::client, use_tuple) ||
                                      limit.async_wait(use_tuple));
                        if (hs.index() == 0 && !std::get<0>(std::get<0>(hs)))
                            co_await invalidations(stream, current, why);
                        else
                            why = "TLS handshake failed";
                    }
                } else {
                    why = "no data connection address";
                }
            } catch (...) {
                why = "internal error: " + describe_current();
            }
            if (!current()) co_return;  // a newer pair or attempt owns the state now
            close_invalidation = nullptr;
            if (cache && cache->usable()) {
                cache->set_usable(false);
                log::warn("session_cache_paused", {{"reason", why}});
            }
            if (stopped || gen != pair_gen || tracking_refused) co_return;
            log::debug("session_cache_retry", {{"reason", why}});
            auto delay = wait.next(rng);
            ++wait.failures;
            tracking_retry.expires_after(delay);
            co_await tracking_retry.async_wait(use_tuple);
        }
    }

    template <typename Socket, typename Endpoint>
    asio::awaitable<bool> connect_with_deadline(Socket& sock, const Endpoint& where) {
        asio::steady_timer limit(ioc, opts.connect_timeout);
        auto outcome =
            co_await (sock.async_connect(where, use_tuple) || limit.async_wait(use_tuple));
        co_return outcome.index() == 0 && !std::get<0>(std::get<0>(outcome)) && sock.is_open();
    }

    // The invalidation connection, until it ends: AUTH, CLIENT ID, SUBSCRIBE, then pushes.
    // `current()` says whether this attempt is still the pair's: a connect or TLS handshake
    // that finishes after its data connection ended (or after stop()) sends nothing.
    template <typename Stream, typename Current>
    asio::awaitable<void> invalidations(Stream& s, const Current& current, std::string& why) {
        if (!current()) {
            why = "superseded";
            co_return;
        }
        const auto gen = pair_gen;
        const auto attempt = tracking_gen;
        close_invalidation = [&s] {
            boost::system::error_code ignored;
            s.lowest_layer().close(ignored);
        };
        std::string out;
        const auto& w = opts.where;
        bool auth_owed = w.auth;
        if (w.auth) {
            if (w.username.empty())
                append_command(out, {"AUTH", w.password});
            else
                append_command(out, {"AUTH", w.username, w.password});
        }
        append_command(out, {"CLIENT", "ID"});
        append_command(out, {"SUBSCRIBE", "__redis__:invalidate"});
        auto [wec, wn] = co_await asio::async_write(s, asio::buffer(out), use_tuple);
        if (wec) {
            why = wec.message();
            co_return;
        }
        resp_reader rr;
        std::array<char, 8192> buf;
        asio::steady_timer ping(ioc);
        auto heard = clock::now();
        std::int64_t id = -1;
        bool subscribed = false;
        const std::string& prefix = opts.tracking_prefix;
        while (current()) {
            ping.expires_after(opts.health_interval);
            auto outcome = co_await (s.async_read_some(asio::buffer(buf), use_tuple) ||
                                     ping.async_wait(use_tuple));
            if (outcome.index() == 1) {
                if (clock::now() - heard > opts.health_interval + opts.health_timeout) {
                    why = "no answer to PING";
                    co_return;
                }
                std::string p;
                append_command(p, {"PING"});
                auto [pec, pn] = co_await asio::async_write(s, asio::buffer(p), use_tuple);
                if (pec) {
                    why = pec.message();
                    co_return;
                }
                continue;
            }
            auto [ec, n] = std::get<0>(outcome);
            if (ec) {
                why = ec == asio::error::eof ? "closed by the server" : ec.message();
                co_return;
            }
            heard = clock::now();
            if (!rr.feed(buf.data(), n)) {
                why = "out of memory";
                co_return;
            }
            bool broken = false;
            while (auto r = rr.next(broken)) {
                auto error = [&] {
                    return std::string(error_word(std::string_view(r->str, r->len)));
                };
                if (auth_owed) {
                    auth_owed = false;
                    if (r->type == REDIS_REPLY_ERROR) {
                        why = "AUTH failed: " + error();
                        co_return;
                    }
                    continue;
                }
                if (id < 0) {
                    if (r->type != REDIS_REPLY_INTEGER) {
                        refuse_tracking(r->type == REDIS_REPLY_ERROR ? error() : "CLIENT ID");
                        why = "CLIENT ID refused";
                        co_return;
                    }
                    id = r->integer;
                    continue;
                }
                if (!subscribed) {
                    if (r->type == REDIS_REPLY_ERROR) {
                        // NOPERM: an ACL user without &__redis__:invalidate.
                        if (error() == "NOPERM") refuse_tracking(error());
                        why = "SUBSCRIBE failed: " + error();
                        co_return;
                    }
                    subscribed = true;
                    enable_tracking(gen, attempt, id);
                    continue;
                }
                auto inv = parse_invalidation(*r);
                if (!inv || !cache) continue;  // a PING's pong
                if (inv->everything) {         // FLUSHDB/FLUSHALL: flushed, still tracked
                    cache->flush();
                    continue;
                }
                for (auto key : inv->keys)
                    if (key.starts_with(prefix)) cache->invalidate(key.substr(prefix.size()));
            }
            if (broken) {
                why = "protocol error";
                co_return;
            }
        }
        why = "stopped";
    }

    void refuse_tracking(const std::string& reply) {
        tracking_refused = true;
        log::warn("session_cache_off", {{"reason", "Redis refused client tracking"},
                                        {"reply", reply},
                                        {"retry", "after the next reconnect"}});
    }

    // Turns tracking on on the data connection; its +OK makes the cache usable.
    void enable_tracking(std::uint64_t gen, std::uint64_t tgen, std::int64_t id) {
        std::string ids = std::to_string(id);
        std::vector<std::string_view> args{"CLIENT", "TRACKING", "on", "REDIRECT", ids, "BCAST"};
        if (!opts.tracking_prefix.empty()) {
            args.emplace_back("PREFIX");
            args.emplace_back(opts.tracking_prefix);
        }
        auto now = clock::now();
        // Off first: tracking may still be on from the last invalidation connection, and
        // Redis refuses a BCAST prefix that overlaps one the client has.
        std::string_view off[] = {"CLIENT", "TRACKING", "off"};
        if (auto w = machine.submit(off, now + opts.command_timeout,
                                    net::completion<reply>([](reply) {}), now))
            arm(*w);
        auto done = [self = shared_from_this(), gen, tgen](reply r) {
            if (gen != self->pair_gen || tgen != self->tracking_gen || !self->cache) return;
            if (r.type == reply::kind::string && r.value == "OK") {
                self->cache->set_usable(true);
                log::info("session_cache_on", {{"mode", "bcast"}});
                return;
            }
            // Refused for good only for NOPERM: "ERR ... redirect ... does not exist" means the
            // invalidation connection died first, so it is tried again with back-off.
            if (r.type == reply::kind::error) {
                if (r.value == "NOPERM")
                    self->refuse_tracking(r.value);
                else
                    log::warn("session_cache_paused",
                              {{"reason", "CLIENT TRACKING answered " + r.value}});
            }
            if (self->close_invalidation) std::exchange(self->close_invalidation, nullptr)();
        };
        auto waits =
            machine.submit(args, now + opts.command_timeout, net::completion<reply>(done), now);
        if (waits) arm(*waits);
        after_machine();
    }

    // --- the loop: connect, serve, back off, again ---
    asio::awaitable<void> run() {
        auto self = shared_from_this();
        while (!stopped) {
            std::string why;
            bool was_ready = false;
            try {
                if (!opts.where.sentinels.empty()) {
                    auto master = co_await ask_sentinels(why);
                    if (master && !stopped) {
                        why.clear();
                        serving = master;
                        co_await serve_tcp(master->first, master->second, why);
                    }
                } else if (!opts.where.unix_path.empty()) {
                    co_await serve_unix(why);
                } else {
                    co_await serve_tcp(opts.where.host, opts.where.port, why);
                }
            } catch (...) {
                // A bug, not an outage; the socket it used is gone with its frame.
                why = "internal error: " + describe_current();
                log::error("redis_loop_failed", {{"error", why}});
                close_socket = nullptr;
                writer_idle = false;
                end_deadline();
            }
            serving.reset();
            end_pair();
            was_ready = machine.ready();
            machine.on_close();
            armed = clock::time_point::max();
            tick_timer.cancel();
            after_machine();
            if (!marked_down) {
                marked_down = true;
                net::global_readiness().mark_down(net::readiness::redis);
            }
            if (stopped) co_return;
            auto delay = skip_backoff ? std::chrono::milliseconds(0) : machine.retry().next(rng);
            skip_backoff = false;
            if (was_ready || machine.retry().failures == 1)
                log::warn("redis_down", {{"reason", why}, {"retry_ms", delay.count()}});
            else
                log::debug("redis_retry", {{"reason", why},
                                           {"failures", machine.retry().failures},
                                           {"retry_ms", delay.count()}});
            retry_timer.expires_after(delay);
            co_await retry_timer.async_wait(use_tuple);
            skip_backoff = false;  // a switch during the wait only cut it short
        }
    }

    void stop() {
        stopped = true;
        tick_timer.cancel();
        retry_timer.cancel();
        deadline_timer.cancel();
        if (close_socket) std::exchange(close_socket, nullptr)();
        if (close_watch) std::exchange(close_watch, nullptr)();
        end_pair();
        wake.cancel();
    }
};

client::client(asio::io_context& ioc, options opts)
    : impl_(std::make_shared<impl>(ioc, std::move(opts))) {}

client::~client() {
    impl_->stop();
}

void client::start() {
    auto on_exit = [](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log::error("redis_loop_failed", {{"error", ex.what()}});
        } catch (...) {
            log::error("redis_loop_failed", {{"error", "unknown exception"}});
        }
    };
    asio::co_spawn(impl_->ioc, impl_->run(), on_exit);
    if (!impl_->opts.where.sentinels.empty())
        asio::co_spawn(impl_->ioc, impl_->watch_sentinels(), on_exit);
}

void client::stop() {
    impl_->stop();
}

session_cache* client::cache() {
    return impl_->cache.get();
}

bool client::connected() const {
    return impl_->machine.ready();
}

void client::start_command(std::string_view verb, std::string_view arg,
                           std::chrono::steady_clock::time_point deadline,
                           net::completion<reply> handler) {
    global_stats().commands.fetch_add(1, std::memory_order_relaxed);
    auto now = clock::now();
    auto limit = now + impl_->opts.command_timeout;
    std::string_view args[] = {verb, arg};
    auto waits = impl_->machine.submit(args, std::min(deadline, limit), std::move(handler), now);
    if (waits) impl_->arm(*waits);
    impl_->after_machine();
}

}  // namespace neptun::redis
