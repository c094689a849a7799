// A Redis client on hiredis's async API, driven by Boost.Asio. One per I/O thread: it is
// touched only from its io_context's thread, so it needs no strand and no lock. Commands
// issued together are written back to back on one connection and their replies matched in
// order (hiredis keeps the FIFO). While the connection is down, commands fail at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include "neptun/net/completion.hpp"

#include "neptun/redis/url.hpp"

namespace neptun::redis {

namespace asio = boost::asio;

struct options {
    address where;
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds command_timeout{1000};
    std::chrono::milliseconds health_interval{1000};
    std::chrono::milliseconds backoff_min{50};
    std::chrono::milliseconds backoff_max{2000};
};

struct reply {
    enum class kind {
        string,       // a bulk or status string in `value`
        nil,          // the key does not exist
        error,        // Redis answered an error (text in `value`)
        unavailable,  // no connection, timed out, or lost before the reply
    };
    kind type = kind::unavailable;
    std::string value;
};

class client {
  public:
    client(asio::io_context& ioc, options opts);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    void start();  // connects in the background; reconnects by itself
    void stop();   // closes the connection and stops reconnecting
    bool connected() const;

    // GET key. Completes on the client's thread with a reply (never throws).
    template <typename Token = asio::use_awaitable_t<>>
    auto async_get(std::string_view key, Token&& token = {}) {
        return asio::async_initiate<Token, void(reply)>(
            [this](auto handler, std::string_view k) {
                start_command("GET", k, net::completion<reply>(std::move(handler)));
            },
            token, key);
    }

    struct impl;

  private:
    void start_command(std::string_view verb, std::string_view arg, net::completion<reply> handler);
    std::shared_ptr<impl> impl_;
};

}  // namespace neptun::redis
