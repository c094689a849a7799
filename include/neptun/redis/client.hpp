// A Redis client for the session lookups. One per I/O thread: it is touched only from its
// io_context's thread, so it needs no strand and no lock. Asio owns the socket (resolve
// without blocking the thread, every address tried, connect timeout, TCP keepalive, TLS);
// hiredis is only the RESP decoder; the decisions live in protocol.hpp's sans-io machine.
// Commands issued together are written in one write and their replies matched in order.
// While the connection is not ready (handshake not answered), commands fail at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include "neptun/net/completion.hpp"

#include "neptun/redis/protocol.hpp"
#include "neptun/redis/session_cache.hpp"
#include "neptun/redis/url.hpp"

namespace neptun::redis {

namespace asio = boost::asio;

// rediss:// settings (NEPTUN_REDIS_TLS_*). The server's certificate is always verified:
// against `ca_file`, or the system's CAs when it is empty; its name against `server_name`,
// or the URL's host when that is empty.
struct tls_options {
    std::string ca_file;
    std::string cert_file;  // client certificate (chain, PEM), with key_file
    std::string key_file;
    std::string server_name;
};

struct options {
    address where;
    tls_options tls;
    std::chrono::milliseconds connect_timeout{2000};  // per address, and for the handshake
    std::chrono::milliseconds command_timeout{1000};  // the most a lookup waits for a reply
    std::chrono::milliseconds health_interval{1000};
    std::chrono::milliseconds health_timeout{2000};  // a PING unanswered this long: drop
    std::chrono::milliseconds backoff_min{50};
    std::chrono::milliseconds backoff_max{2000};
    // The session cache (CLIENT TRACKING BCAST PREFIX `tracking_prefix`), or none.
    std::optional<session_cache_options> cache;
    std::string tracking_prefix;
};

// Whether the TLS settings can be loaded (files readable, key matches the certificate).
bool check_tls(const tls_options& tls, std::string& why);

class client {
  public:
    client(asio::io_context& ioc, options opts);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    void start();  // connects in the background; reconnects by itself
    void stop();   // closes the connection and stops reconnecting
    bool connected() const;

    // GET key. Completes on the client's thread with a reply (never throws), at the latest
    // at min(deadline, now + command_timeout) (then unavailable).
    template <typename Token = asio::use_awaitable_t<>>
    auto async_get(std::string_view key, std::chrono::steady_clock::time_point deadline,
                   Token&& token = {}) {
        return asio::async_initiate<Token, void(reply)>(
            [this](auto handler, std::string_view k, std::chrono::steady_clock::time_point d) {
                start_command("GET", k, d, net::completion<reply>(std::move(handler)));
            },
            token, key, deadline);
    }
    template <typename Token = asio::use_awaitable_t<>>
    auto async_get(std::string_view key, Token&& token = {}) {
        return async_get(key, std::chrono::steady_clock::time_point::max(),
                         std::forward<Token>(token));
    }

    // PTTL key: an integer reply (milliseconds left, -1 no expiry, -2 no key).
    template <typename Token = asio::use_awaitable_t<>>
    auto async_pttl(std::string_view key, std::chrono::steady_clock::time_point deadline,
                    Token&& token = {}) {
        return asio::async_initiate<Token, void(reply)>(
            [this](auto handler, std::string_view k, std::chrono::steady_clock::time_point d) {
                start_command("PTTL", k, d, net::completion<reply>(std::move(handler)));
            },
            token, key, deadline);
    }

    // This thread's session cache; null when it is turned off. Usable only while Redis's
    // tracking is confirmed (session_cache::usable()).
    session_cache* cache();

    struct impl;

  private:
    void start_command(std::string_view verb, std::string_view arg,
                       std::chrono::steady_clock::time_point deadline,
                       net::completion<reply> handler);
    std::shared_ptr<impl> impl_;
};

}  // namespace neptun::redis
