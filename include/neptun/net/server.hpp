// The HTTP/1.1 server core: thread-per-core workers, each with its own io_context and
// SO_REUSEPORT acceptor, running one coroutine per connection. Handlers (`service`) see a
// parsed request and return a response; they never touch a socket.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "neptun/net/limits.hpp"
#include "neptun/net/metrics.hpp"

namespace neptun::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

// A request's header fields come from an arena that lives as long as the request does (the
// connection loop's: one pooled 4 KiB block per request, more only for a long header), not
// from one heap allocation per field.
using request_fields = http::basic_fields<std::pmr::polymorphic_allocator<char>>;
using request = http::request<http::string_body, request_fields>;
using response = http::response<http::string_body>;
using clock = std::chrono::steady_clock;

// What routing decided from a request's header, before its body is read: matched once,
// the handler gets it with the request.
struct routed {
    route_label label = route_label::unmatched;
    int route = -1;
    std::optional<response> early;  // answered at once (404, 405) without reading the body
    // The pattern's {param} segments, in order, as places in the request-target (which
    // outlives the routing: the same message goes on to the handler).
    struct place {
        std::uint32_t offset = 0, size = 0;
    };
    std::array<place, 4> params{};
    // The request's X-Request-Id as the connection loop answers it (the client's, or ours),
    // for the handler's log lines; set before the handler runs.
    std::string_view request_id;
    std::string_view trace_id;  // of the request's traceparent, or empty
    std::string_view param(std::string_view target, std::size_t i) const {
        return target.substr(params[i].offset, params[i].size);
    }
};

class service {
  public:
    virtual ~service() = default;
    virtual routed route(const request& header) = 0;
    // Runs with the request's body read. Store calls must give up by `deadline`.
    // `req` lives in the connection loop's arena: it, and every view into it, is gone once
    // the handler has answered (copy what must outlive it).
    virtual asio::awaitable<response> handle(const request& req, const routed& r,
                                             clock::time_point deadline) = 0;
    // Protocol-level error bodies (400, 413, 431, 500, 503): built where every error body is.
    virtual response error(http::status status, std::string_view message) = 0;
    // Called on the worker's thread once its last connection closed during a drain: close the
    // stores so the io_context runs out of work.
    virtual void shutdown() {}
};

struct listen_spec {
    std::string host;
    std::uint16_t port = 0;
};

class worker;

class server {
  public:
    using service_factory =
        std::function<std::unique_ptr<service>(asio::io_context& ioc, unsigned index)>;

    server(limits lim, listen_spec api, unsigned threads, service_factory make_service);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Binds every worker's acceptor (throws std::system_error when it cannot) and starts the
    // threads. `on_stopped` runs on a worker thread once every worker has finished.
    void start(std::function<void()> on_stopped);
    std::uint16_t port() const { return port_; }

    // Thread-safe: stop accepting, close idle keep-alive connections, let requests in flight
    // finish (their responses say Connection: close), then shut the services down.
    void drain();
    // Thread-safe: stops every io_context at once (the forced end of a drain).
    void stop();
    void join();

  private:
    limits limits_;
    listen_spec api_;
    std::uint16_t port_ = 0;
    std::vector<std::unique_ptr<worker>> workers_;
    std::vector<std::thread> threads_;
    std::atomic<unsigned> running_{0};
    std::function<void()> on_stopped_;
    service_factory factory_holder_;
};

// A single-threaded listener on an io_context of the caller's (the admin port).
class admin_listener {
  public:
    admin_listener(asio::io_context& ioc, const listen_spec& where, limits lim, service& svc);
    ~admin_listener();
    std::uint16_t port() const;
    void close();

    struct state;  // shared by the accept loop and the connections' frames

  private:
    std::shared_ptr<state> state_;
};

}  // namespace neptun::net
