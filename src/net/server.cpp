#include "neptun/net/server.hpp"

#include <list>
#include <system_error>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "neptun/net/framing.hpp"
#include "neptun/net/log.hpp"
#include "neptun/net/text.hpp"

namespace neptun::net {
namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

asio::ip::tcp::endpoint resolve_endpoint(const listen_spec& where) {
    boost::system::error_code ec;
    auto address = asio::ip::make_address(where.host, ec);
    if (ec)
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "not an IP address: " + where.host);
    return {address, where.port};
}

asio::ip::tcp::acceptor open_acceptor(asio::io_context& ioc, const asio::ip::tcp::endpoint& ep,
                                      bool reuse_port) {
    asio::ip::tcp::acceptor acceptor(ioc);
    acceptor.open(ep.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    if (reuse_port) {
        int one = 1;
        if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
            throw std::system_error(errno, std::generic_category(), "SO_REUSEPORT");
    }
    acceptor.bind(ep);
    acceptor.listen(asio::socket_base::max_listen_connections);
    return acceptor;
}

// A connection's place in its worker's registry: lets a drain find the idle ones.
struct connection_slot {
    beast::tcp_stream* stream = nullptr;
    bool idle = false;
};

// What one connection loop needs from whoever runs it.
struct loop_context {
    service& svc;
    const limits& lim;
    std::list<connection_slot>& connections;
    const bool& draining;
    bool count_in_metrics;
    std::uint64_t& access_counter;
};

bool has_body(const request& req) {
    return req.chunked() || req.has_content_length();
}

// Answers with an error response and reports whether the connection must close.
asio::awaitable<void> write_response(beast::tcp_stream& stream, response& res, const limits& lim,
                                     bool head = false) {
    if (res.result() == http::status::not_modified)
        res.erase(http::field::content_length);  // a 304 has no body and says no length
    else
        res.prepare_payload();
    if (head) {
        // A response to HEAD says how long the body would be and sends none (RFC 9110 §9.3.2).
        auto length = res.body().size();
        res.body().clear();
        res.content_length(length);
    }
    stream.expires_after(lim.write_timeout);
    auto [ec, n] = co_await http::async_write(stream, res, nothrow);
    (void)n;
    if (ec == beast::error::timeout) global_metrics().deadline_closes.fetch_add(1);
}

// Reads and drops what the client still sends after our last response, for a moment, so
// that closing with unread bytes does not make the kernel send a reset, which can destroy
// the response before the client has read it.
asio::awaitable<void> linger(beast::tcp_stream& stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    stream.expires_after(std::chrono::seconds(1));
    char scratch[4096];
    for (std::size_t drained = 0; drained < 65536;) {
        auto [rec, n] = co_await stream.async_read_some(asio::buffer(scratch), nothrow);
        if (rec) break;
        drained += n;
    }
}

// The last response of a connection whose input we will not parse any further.
asio::awaitable<void> answer_and_close(beast::tcp_stream& stream, response res, route_label label,
                                       const limits& lim, bool head = false) {
    res.version(11);
    res.keep_alive(false);
    global_metrics().request(label, res.result_int(), 0);
    co_await write_response(stream, res, lim, head);
    co_await linger(stream);
}

void close_gracefully(beast::tcp_stream& stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    stream.socket().close(ec);
}

void access_log(const loop_context& ctx, const request& req, unsigned status, double seconds) {
    if (ctx.lim.access_log_sample <= 0 || !log::enabled(log::level::info)) return;
    auto every = static_cast<std::uint64_t>(1.0 / ctx.lim.access_log_sample + 0.5);
    if (every > 1 && (ctx.access_counter++ % every) != 0) return;
    auto target = std::string_view(req.target());
    target = target.substr(0, target.find('?'));  // the query is not ours to log
    log::info("access", {{"method", std::string_view(req.method_string())},
                         {"path", target},
                         {"status", status},
                         {"duration_us", static_cast<std::int64_t>(seconds * 1e6)}});
}

struct header_read {
    boost::system::error_code ec;
    bool folded = false;
};

// Reads a request's header into `parser`. It counts every byte of the header against the
// limit (Beast 1.81's own count leaves out the request line and, at times, fields already
// parsed) and refuses obsolete line folding (RFC 9112 §5.2), which Beast would quietly unfold
// where a proxy in front of us might not.
asio::awaitable<header_read> read_header(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                         http::request_parser<http::string_body>& parser,
                                         std::size_t limit) {
    std::size_t scanned = 0;  // bytes already searched: a trickling client costs no rescans
    bool bare_lf = false;
    for (;;) {
        std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
        auto end = data.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
        auto head_size = end == std::string_view::npos ? data.size() : end + 2;
        for (std::size_t i = scanned; i < head_size && !bare_lf; ++i)
            bare_lf = data[i] == '\n' && (i == 0 || data[i - 1] != '\r');
        scanned = data.size();
        if (end != std::string_view::npos || bare_lf) {
            if (end != std::string_view::npos && end + 4 > limit)
                co_return header_read{http::error::header_limit};
            auto head = data.substr(0, head_size);
            for (std::size_t i = 0; i + 2 < head.size(); ++i)
                if (head[i] == '\r' && head[i + 1] == '\n' &&
                    (head[i + 2] == ' ' || head[i + 2] == '\t'))
                    co_return header_read{http::error::bad_value, true};
            boost::system::error_code ec;
            auto used = parser.put(buffer.data(), ec);
            buffer.consume(used);
            scanned = 0;
            if (ec == http::error::need_more && parser.is_header_done()) ec = {};
            // Beast wants more although a header end is there (e.g. empty lines before the
            // request line): read on, or refuse a bare LF it will never accept.
            if (ec != http::error::need_more) co_return header_read{ec};
            if (bare_lf) co_return header_read{http::error::bad_line_ending};
        }
        if (buffer.size() >= limit) co_return header_read{http::error::header_limit};
        auto room = std::min<std::size_t>(4096, limit + 4 - buffer.size());
        auto [rec, n] = co_await stream.async_read_some(buffer.prepare(room), nothrow);
        if (rec) co_return header_read{rec};
        buffer.commit(n);
    }
}

asio::awaitable<void> run_connection(beast::tcp_stream stream, loop_context ctx) {
    auto slot = ctx.connections.insert(ctx.connections.end(), connection_slot{&stream, false});
    const auto& lim = ctx.lim;
    // Bounded: Beast 1.81 does not count chunk extensions or trailers against the body limit,
    // so without a cap one connection could make us buffer whatever it sends.
    beast::flat_buffer buffer(lim.max_header_bytes + lim.max_body_bytes + 16384);
    auto& m = global_metrics();

    for (;;) {
        // Idle phase: waiting for the first byte of the next request.
        if (buffer.size() == 0) {
            if (ctx.draining) break;
            slot->idle = true;
            stream.expires_after(lim.idle_timeout);
            auto [ec, n] = co_await stream.async_read_some(buffer.prepare(4096), nothrow);
            slot->idle = false;
            if (ec) {
                if (ec == beast::error::timeout) m.deadline_closes.fetch_add(1);
                break;
            }
            buffer.commit(n);
        }
        auto started = clock::now();

        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(lim.max_header_bytes));
        parser.body_limit(lim.max_body_bytes);

        stream.expires_after(lim.header_timeout);
        auto [hec, folded] = co_await read_header(stream, buffer, parser, lim.max_header_bytes);
        const request& header = parser.get();
        const bool head = header.method() == http::verb::head;
        routed r;
        std::optional<response> refusal;
        if (hec == http::error::header_limit) {
            refusal = ctx.svc.error(http::status::request_header_fields_too_large,
                                    "Request header fields too large");
        } else if (hec == http::error::body_limit) {
            // Beast checks a declared Content-Length against the limit with the header; the
            // route still answers first (contract order: 404/405, then 413).
            r = ctx.svc.route(header);
            refusal = r.early ? std::move(r.early)
                              : ctx.svc.error(http::status::payload_too_large, "Payload too large");
        } else if (hec == beast::error::timeout) {
            m.deadline_closes.fetch_add(1);
            break;
        } else if (hec == http::error::end_of_stream || hec == asio::error::eof ||
                   hec == asio::error::operation_aborted || hec == asio::error::connection_reset) {
            break;
        } else if (folded) {
            refusal =
                ctx.svc.error(http::status::bad_request, "Obsolete line folding is not accepted");
        } else if (hec) {
            refusal = ctx.svc.error(http::status::bad_request, "Malformed HTTP request");
        }
        if (refusal) {
            co_await answer_and_close(stream, std::move(*refusal), r.label, lim, head);
            break;
        }

        // Framing that Beast 1.81 accepts but a proxy in front of us might read otherwise.
        {
            std::string_view lengths[8], encodings[8];
            std::size_t nl = 0, ne = 0;
            bool too_many = false;
            for (const auto& f : header) {
                if (f.name() == http::field::content_length) {
                    if (nl == 8)
                        too_many = true;
                    else
                        lengths[nl++] = f.value();
                } else if (f.name() == http::field::transfer_encoding) {
                    if (ne == 8)
                        too_many = true;
                    else
                        encodings[ne++] = f.value();
                }
            }
            auto fe = too_many
                          ? framing_error::conflicting_content_length
                          : check_framing({lengths, nl}, {encodings, ne}, header.version() < 11);
            if (fe != framing_error::none) {
                m.framing_refusals.fetch_add(1);
                co_await answer_and_close(stream,
                                          ctx.svc.error(http::status::bad_request, describe(fe)),
                                          route_label::unmatched, lim, head);
                break;
            }
        }

        r = ctx.svc.route(header);
        if (ctx.draining && !r.early) {
            // A request that arrives once the drain began: the contract's 503, and we close.
            co_await answer_and_close(
                stream, ctx.svc.error(http::status::service_unavailable, "Server is shutting down"),
                r.label, lim, head);
            break;
        }
        if (r.early) {
            auto& res = *r.early;
            bool keep = header.keep_alive() && !has_body(header) && !ctx.draining;
            res.version(header.version());
            res.keep_alive(keep);
            double seconds = std::chrono::duration<double>(clock::now() - started).count();
            m.request(r.label, res.result_int(), seconds);
            access_log(ctx, header, res.result_int(), seconds);
            co_await write_response(stream, res, lim, head);
            if (!keep) {
                if (has_body(header)) co_await linger(stream);  // its body is still coming
                break;
            }
            continue;
        }

        if (!parser.is_done()) {
            if (iequals(header[http::field::expect], "100-continue") && header.version() >= 11) {
                static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
                stream.expires_after(lim.write_timeout);
                auto [wec, wn] = co_await asio::async_write(
                    stream, asio::buffer(cont.data(), cont.size()), nothrow);
                (void)wn;
                if (wec) break;
            }
            stream.expires_after(lim.body_timeout);
            auto [bec, bn] = co_await http::async_read(stream, buffer, parser, nothrow);
            (void)bn;
            if (bec) {
                if (bec == beast::error::timeout) {
                    m.deadline_closes.fetch_add(1);
                    break;
                }
                if (bec == http::error::end_of_stream || bec == asio::error::eof ||
                    bec == asio::error::connection_reset)
                    break;
                // Too much data, whether counted as body or as chunk framing around it.
                bool too_large =
                    bec == http::error::body_limit || bec == http::error::buffer_overflow;
                auto res = too_large
                               ? ctx.svc.error(http::status::payload_too_large, "Payload too large")
                               : ctx.svc.error(http::status::bad_request, "Malformed request body");
                co_await answer_and_close(stream, std::move(res), r.label, lim, head);
                break;
            }
        }

        request req = parser.release();
        // The deadline for store calls; their own timeouts keep a slow store from hanging us.
        stream.expires_never();
        std::optional<response> res;
        try {
            res = co_await ctx.svc.handle(req, r.route, clock::now() + lim.handler_timeout);
        } catch (const std::exception& e) {
            log::error("handler_failed", {{"what", e.what()}});
        }
        if (!res) res = ctx.svc.error(http::status::internal_server_error, "Internal server error");
        bool keep = req.keep_alive() && !ctx.draining;
        res->version(req.version());
        res->keep_alive(keep);
        double seconds = std::chrono::duration<double>(clock::now() - started).count();
        if (ctx.count_in_metrics || r.label != route_label::unmatched)
            m.request(r.label, res->result_int(), seconds);
        access_log(ctx, req, res->result_int(), seconds);
        co_await write_response(stream, *res, lim);
        if (!keep || !stream.socket().is_open()) break;
    }
    ctx.connections.erase(slot);
    close_gracefully(stream);
}

// Answers a connection past the cap with a 503 and closes it, without a coroutine.
void refuse(asio::ip::tcp::socket& socket, const std::string& canned) {
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(canned), ec);
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket.close(ec);
}

std::string serialize(response res) {
    res.version(11);
    res.keep_alive(false);
    res.prepare_payload();
    std::ostringstream out;
    out << res;
    return out.str();
}

}  // namespace

class worker {
  public:
    worker(unsigned index, const limits& lim) : index_(index), limits_(lim), ioc_(1) {}

    void bind(const asio::ip::tcp::endpoint& ep, bool reuse_port) {
        acceptor_.emplace(open_acceptor(ioc_, ep, reuse_port));
    }
    std::uint16_t bound_port() const { return acceptor_->local_endpoint().port(); }

    void start(server::service_factory& make) {
        service_ = make(ioc_, index_);
        refusal_ =
            serialize(service_->error(http::status::service_unavailable, "Too many connections"));
        asio::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) {
            if (e) log::error("accept_loop_failed");
        });
    }

    void run() { ioc_.run(); }

    void drain() {
        asio::post(ioc_, [this] {
            draining_ = true;
            boost::system::error_code ec;
            if (acceptor_) acceptor_->close(ec);
            for (auto& c : connections_)
                if (c.idle) c.stream->cancel();
            maybe_finish();
        });
    }

    void stop() { ioc_.stop(); }

  private:
    asio::awaitable<void> accept_loop() {
        auto& m = global_metrics();
        for (;;) {
            auto [ec, socket] = co_await acceptor_->async_accept(nothrow);
            if (ec) {
                if (ec == asio::error::operation_aborted || !acceptor_->is_open()) break;
                // EMFILE and friends: keep serving the connections we have.
                log::warn("accept_failed", {{"error", ec.message()}});
                asio::steady_timer pause(ioc_, std::chrono::milliseconds(50));
                co_await pause.async_wait(nothrow);
                continue;
            }
            if (static_cast<std::size_t>(m.open_connections.load(std::memory_order_relaxed)) >=
                limits_.max_connections) {
                m.connections_refused.fetch_add(1, std::memory_order_relaxed);
                refuse(socket, refusal_);
                continue;
            }
            socket.set_option(asio::ip::tcp::no_delay(true));
            m.open_connections.fetch_add(1, std::memory_order_relaxed);
            m.connections_total.fetch_add(1, std::memory_order_relaxed);
            ++live_;
            asio::co_spawn(ioc_,
                           run_connection(beast::tcp_stream(std::move(socket)),
                                          loop_context{*service_, limits_, connections_, draining_,
                                                       true, access_counter_}),
                           [this](std::exception_ptr e) {
                               if (e) log::error("connection_failed");
                               global_metrics().open_connections.fetch_sub(1);
                               --live_;
                               maybe_finish();
                           });
        }
    }

    void maybe_finish() {
        if (draining_ && live_ == 0 && !finished_) {
            finished_ = true;
            service_->shutdown();
        }
    }

    unsigned index_;
    const limits& limits_;
    asio::io_context ioc_;
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    std::unique_ptr<service> service_;
    std::string refusal_;
    // Touched only on this worker's thread: no strand and no lock needed.
    std::list<connection_slot> connections_;
    bool draining_ = false;
    bool finished_ = false;
    std::size_t live_ = 0;
    std::uint64_t access_counter_ = 0;
};

server::server(limits lim, listen_spec api, unsigned threads, service_factory make_service)
    : limits_(lim), api_(std::move(api)) {
    if (threads == 0) threads = 1;
    for (unsigned i = 0; i < threads; ++i) workers_.push_back(std::make_unique<worker>(i, limits_));
    on_stopped_ = nullptr;
    factory_holder_ = std::move(make_service);
}

server::~server() {
    stop();
    join();
}

void server::start(std::function<void()> on_stopped) {
    on_stopped_ = std::move(on_stopped);
    auto ep = resolve_endpoint(api_);
    bool many = workers_.size() > 1;
    workers_[0]->bind(ep, many);
    port_ = workers_[0]->bound_port();
    ep.port(port_);  // port 0 asked for "any": the other workers share the one we got
    for (std::size_t i = 1; i < workers_.size(); ++i) workers_[i]->bind(ep, many);
    for (auto& w : workers_) w->start(factory_holder_);
    running_ = static_cast<unsigned>(workers_.size());
    for (auto& w : workers_) {
        threads_.emplace_back([this, wp = w.get()] {
            wp->run();
            if (running_.fetch_sub(1) == 1 && on_stopped_) on_stopped_();
        });
    }
}

void server::drain() {
    for (auto& w : workers_) w->drain();
}

void server::stop() {
    for (auto& w : workers_) w->stop();
}

void server::join() {
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

struct admin_listener::state {
    state(asio::io_context& ioc, const listen_spec& where, limits lim, service& svc)
        : acceptor(open_acceptor(ioc, resolve_endpoint(where), false)), lim(lim), svc(svc) {}
    asio::ip::tcp::acceptor acceptor;
    limits lim;
    service& svc;
    std::list<connection_slot> connections;
    bool draining = false;
    std::uint64_t access_counter = 0;
};

admin_listener::admin_listener(asio::io_context& ioc, const listen_spec& where, limits lim,
                               service& svc)
    : state_(std::make_shared<state>(ioc, where, lim, svc)) {
    state_->lim.access_log_sample = 0;  // probes and scrapes would drown the access log
    asio::co_spawn(
        ioc,
        [s = state_]() -> asio::awaitable<void> {
            for (;;) {
                auto [ec, socket] = co_await s->acceptor.async_accept(nothrow);
                if (ec) {
                    if (!s->acceptor.is_open()) co_return;
                    continue;
                }
                asio::co_spawn(s->acceptor.get_executor(),
                               run_connection(beast::tcp_stream(std::move(socket)),
                                              loop_context{s->svc, s->lim, s->connections,
                                                           s->draining, false, s->access_counter}),
                               [s](std::exception_ptr) {});
            }
        },
        [](std::exception_ptr e) {
            if (e) log::error("admin_accept_failed");
        });
}

admin_listener::~admin_listener() {
    close();
}

std::uint16_t admin_listener::port() const {
    return state_->acceptor.local_endpoint().port();
}

void admin_listener::close() {
    boost::system::error_code ec;
    state_->acceptor.close(ec);
}

}  // namespace neptun::net
