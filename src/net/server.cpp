#include "neptun/net/server.hpp"

#include <cctype>
#include <list>
#include <random>
#include <sstream>
#include <system_error>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "neptun/net/connection_rules.hpp"
#include "neptun/net/framing.hpp"
#include "neptun/net/log.hpp"
#include "neptun/net/protocol.hpp"
#include "neptun/net/text.hpp"

namespace neptun::net {
namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// Room for a chunk line or a partial read beside the header: the body is copied out of the
// read buffer as it arrives, so the buffer never needs the body limit.
constexpr std::size_t read_slack = 8192;
constexpr std::size_t idle_read = 4096;
constexpr auto slow_request = std::chrono::seconds(1);
constexpr std::string_view request_id_field = "X-Request-Id";

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

// A connection's place in its listener's registry: lets a drain find the idle ones.
struct connection_slot {
    beast::tcp_stream* stream = nullptr;
    bool idle = false;
};

// Holds a registry entry for exactly as long as the connection runs, on every path out.
class slot_guard {
  public:
    slot_guard(std::list<connection_slot>& registry, beast::tcp_stream& stream)
        : registry_(registry), it_(registry.insert(registry.end(), {&stream, false})) {}
    ~slot_guard() { registry_.erase(it_); }
    slot_guard(const slot_guard&) = delete;
    slot_guard& operator=(const slot_guard&) = delete;
    connection_slot* operator->() { return &*it_; }

  private:
    std::list<connection_slot>& registry_;
    std::list<connection_slot>::iterator it_;
};

// Request ids of one listener thread: a random prefix per thread and a counter, unique
// across the fleet with overwhelming likelihood and cheap to make.
class request_ids {
  public:
    request_ids() {
        std::random_device rd;
        auto r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
        std::snprintf(prefix_, sizeof prefix_, "%016llx", static_cast<unsigned long long>(r));
    }
    std::string next() {
        char buf[40];
        int n = std::snprintf(buf, sizeof buf, "%s-%llx", prefix_,
                              static_cast<unsigned long long>(++counter_));
        return std::string(buf, static_cast<std::size_t>(n));
    }

  private:
    char prefix_[17];
    std::uint64_t counter_ = 0;
};

// The Date of this second, formatted once per second per thread.
std::string_view http_date() {
    thread_local std::time_t cached_at = 0;
    thread_local std::string cached;
    auto now = std::time(nullptr);
    if (now != cached_at) {
        cached = format_http_date(now);
        cached_at = now;
    }
    return cached;
}

// What one connection loop needs from whoever runs it. Everything here is touched only from
// the listener's own thread.
struct loop_context {
    service& svc;
    const limits& lim;
    std::list<connection_slot>& connections;
    const bool& draining;
    bool count_in_metrics;
    std::uint64_t log_every;  // access lines: one in N requests, 0 none
    std::uint64_t& access_counter;
    request_ids& ids;
};

// The request's identity for its response and its log lines (CONTRACT.md §1.3).
struct request_meta {
    std::string id;
    std::string_view trace_id;  // into the request's header; empty if none
};

request_meta identify(const request& header, request_ids& ids) {
    request_meta meta;
    auto given = header[request_id_field];
    meta.id = acceptable_request_id(given) ? std::string(given) : ids.next();
    if (auto t = trace_id_of(header["traceparent"])) meta.trace_id = *t;
    return meta;
}

bool has_body(const request& req) {
    return req.chunked() || req.has_content_length();
}

std::size_t field_count(const request& header) {
    return static_cast<std::size_t>(std::distance(header.begin(), header.end()));
}

asio::awaitable<void> write_response(beast::tcp_stream& stream, response& res, const limits& lim,
                                     const request_meta& meta, bool head = false) {
    res.set(http::field::date, http_date());
    res.set(request_id_field, meta.id);
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
                                       const limits& lim, const request_meta& meta,
                                       bool head = false) {
    res.version(11);
    res.keep_alive(false);
    global_metrics().request(label, res.result_int(), 0);
    co_await write_response(stream, res, lim, meta, head);
    co_await linger(stream);
}

void close_gracefully(beast::tcp_stream& stream) {
    boost::system::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    stream.socket().close(ec);
}

void access_log(const loop_context& ctx, const request& req, const request_meta& meta,
                unsigned status, clock::duration took) {
    auto target = std::string_view(req.target());
    target = target.substr(0, target.find('?'));  // the query is not ours to log
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(took).count();
    auto line = [&](log::level l, std::string_view event) {
        auto method = std::string_view(req.method_string());
        if (meta.trace_id.empty())
            log::write(l, event,
                       {{"method", method},
                        {"path", target},
                        {"status", status},
                        {"duration_us", us},
                        {"request_id", meta.id}});
        else
            log::write(l, event,
                       {{"method", method},
                        {"path", target},
                        {"status", status},
                        {"duration_us", us},
                        {"request_id", meta.id},
                        {"trace_id", meta.trace_id}});
    };
    if (took >= slow_request && log::enabled(log::level::warn))
        line(log::level::warn, "slow_request");
    if (ctx.log_every == 0 || !log::enabled(log::level::info)) return;
    if (ctx.log_every > 1 && (ctx.access_counter++ % ctx.log_every) != 0) return;
    line(log::level::info, "access");
}

struct header_result {
    boost::system::error_code ec;
    const char* refusal = nullptr;  // a protocol 400 of our own, with this message
};

// Reads a request's header into `parser`. It counts every byte of the header against the
// limit (Beast 1.81's own count leaves out the request line and, at times, fields already
// parsed) and the field lines against theirs, ignores empty lines before the request line,
// refuses at once what cannot begin a request (a TLS ClientHello), and refuses obsolete line
// folding (RFC 9112 §5.2), which Beast would quietly unfold where a proxy might not.
asio::awaitable<header_result> read_header(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                           http::request_parser<http::string_body>& parser,
                                           const limits& lim) {
    const std::size_t limit = lim.max_header_bytes;
    std::size_t scanned = 0;  // bytes already searched: a trickling client costs no rescans
    std::size_t lines = 0;    // line ends seen in those bytes
    bool bare_lf = false;
    bool method_seen = false;
    for (;;) {
        if (!method_seen) {
            std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
            auto start = classify_start(data);
            buffer.consume(start.empty_lines);
            if (start.refused)
                co_return header_result{http::error::bad_method, "Malformed HTTP request"};
            method_seen = start.method_seen;
        }
        std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
        auto end = data.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
        auto head_size = end == std::string_view::npos ? data.size() : end + 2;
        for (std::size_t i = scanned; i < head_size && !bare_lf; ++i) {
            if (data[i] != '\n') continue;
            bare_lf = i == 0 || data[i - 1] != '\r';
            ++lines;
        }
        scanned = std::max(scanned, head_size);
        // The request line is one line; every other line is a field.
        if (lines > lim.max_header_fields + 1) co_return header_result{http::error::header_limit};
        if (end != std::string_view::npos || bare_lf) {
            if (end != std::string_view::npos && end + 4 > limit)
                co_return header_result{http::error::header_limit};
            auto head = data.substr(0, head_size);
            for (std::size_t i = 0; i + 2 < head.size(); ++i)
                if (head[i] == '\r' && head[i + 1] == '\n' &&
                    (head[i + 2] == ' ' || head[i + 2] == '\t'))
                    co_return header_result{http::error::bad_value,
                                            "Obsolete line folding is not accepted"};
            if (bare_lf)
                co_return header_result{http::error::bad_line_ending, "Malformed HTTP request"};
            boost::system::error_code ec;
            auto used = parser.put(buffer.data(), ec);
            buffer.consume(used);
            if (ec == http::error::need_more && parser.is_header_done()) ec = {};
            if (ec && ec != http::error::need_more)
                co_return header_result{
                    ec, ec == http::error::body_limit ? nullptr : "Malformed HTTP request"};
            if (!ec) co_return header_result{};
            scanned = 0;
            lines = 0;
        }
        if (buffer.size() >= limit) co_return header_result{http::error::header_limit};
        auto room = std::min<std::size_t>(4096, limit + 4 - buffer.size());
        auto [rec, n] = co_await stream.async_read_some(buffer.prepare(room), nothrow);
        if (rec) co_return header_result{rec};
        buffer.commit(n);
    }
}

// Framing that Beast 1.81 accepts but a proxy in front of us might read otherwise, and the
// Host rule of RFC 9112 §3.2. Returns the refusal's message, or nothing.
std::optional<std::string_view> protocol_refusal(const request& header) {
    std::string_view lengths[8], encodings[8];
    std::size_t nl = 0, ne = 0, hosts = 0;
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
        } else if (f.name() == http::field::host) {
            ++hosts;
        }
    }
    auto fe = too_many ? framing_error::conflicting_content_length
                       : check_framing({lengths, nl}, {encodings, ne}, header.version() < 11);
    if (fe != framing_error::none) return describe(fe);
    if (hosts > 1 || (hosts == 0 && header.version() >= 11))
        return std::string_view("Exactly one Host header is required");
    return std::nullopt;
}

asio::awaitable<void> run_connection(beast::tcp_stream stream, loop_context ctx) {
    slot_guard slot(ctx.connections, stream);
    const auto& lim = ctx.lim;
    beast::flat_buffer buffer(std::max(lim.max_header_bytes, max_chunk_line) + read_slack);
    auto& m = global_metrics();

    for (;;) {
        // Idle phase: waiting for the first byte of the next request, holding no more
        // buffer than one small read needs.
        if (buffer.size() == 0) {
            if (ctx.draining) break;
            buffer.shrink_to_fit();
            slot->idle = true;
            stream.expires_after(lim.idle_timeout);
            auto [ec, n] = co_await stream.async_read_some(buffer.prepare(idle_read), nothrow);
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
        bool trailers = false;
        auto chunk_header = [&](std::uint64_t size, std::string_view extensions,
                                boost::system::error_code& ec) {
            // The size's digits stand right before the extensions in the read buffer (Beast
            // takes any number of leading zeros): the whole line counts against 4 KiB.
            std::size_t digits = 0;
            const char* begin = static_cast<const char*>(buffer.data().data());
            const char* end = begin + buffer.size();
            if (extensions.data() && extensions.data() >= begin && extensions.data() <= end)
                for (const char* p = extensions.data();
                     p > begin && std::isxdigit(static_cast<unsigned char>(p[-1])); --p)
                    ++digits;
            if (digits > 16 || !acceptable_chunk_extensions(extensions)) {
                ec = http::error::bad_chunk_extension;
                return;
            }
            // Beast calls this for the last chunk once the whole trailer section is in the
            // buffer, before it parses that section into header fields: refuse trailers here,
            // so their fields never take memory.
            if (size == 0 && extensions.data() &&
                extensions.data() + extensions.size() + 4 <= end &&
                std::string_view(extensions.data() + extensions.size(), 4) != "\r\n\r\n") {
                trailers = true;
                ec = http::error::bad_chunk_extension;
                return;
            }
            // Grow the body to what this chunk needs, never past the limit by doubling.
            auto& body = parser.get().body();
            auto need = body.size() + std::min<std::uint64_t>(size, lim.max_body_bytes);
            if (need > body.capacity())
                body.reserve(
                    std::min<std::size_t>(std::max(need, 2 * body.capacity()), lim.max_body_bytes));
        };
        parser.on_chunk_header(chunk_header);

        stream.expires_after(lim.header_timeout);
        auto hr = co_await read_header(stream, buffer, parser, lim);
        const request& header = parser.get();
        const bool head = header.method() == http::verb::head;
        const request_meta meta = identify(header, ctx.ids);
        header_facts facts;
        facts.read = classify_header_read(hr.ec, hr.refusal);
        if (hr.refusal) facts.refusal = hr.refusal;
        routed r;
        if (facts.read == header_read::complete || facts.read == header_read::body_too_large) {
            facts.protocol_error = protocol_refusal(header);
            r = ctx.svc.route(header);  // matched once: the handler gets `r`
            facts.routed_early = r.early.has_value();
            facts.keep_alive = header.keep_alive();
            facts.has_body = has_body(header);
            facts.body_done = parser.is_done();
        }
        facts.draining = ctx.draining;
        // From SIGTERM on (the shutdown delay included), every response says close, so that
        // proxies stop reusing the connection before we close it.
        facts.closing = global_readiness().draining();
        auto v = after_header(facts);
        if (v.deadline_close) m.deadline_closes.fetch_add(1);
        if (v.framing_refusal) m.framing_refusals.fetch_add(1);
        const auto label = v.label_from_route ? r.label : route_label::unmatched;
        if (v.step == next_step::close) break;
        if (v.step == next_step::refuse) {
            co_await answer_and_close(stream, ctx.svc.error(v.status, v.message), label, lim, meta,
                                      head);
            break;
        }
        if (v.step == next_step::answer_early) {
            auto& res = *r.early;
            res.version(header.version());
            res.keep_alive(v.keep);
            auto took = clock::now() - started;
            m.request(label, res.result_int(), std::chrono::duration<double>(took).count());
            access_log(ctx, header, meta, res.result_int(), took);
            co_await write_response(stream, res, lim, meta, head);
            if (!v.keep) {
                co_await linger(stream);  // a body, or a pipelined request, may be coming
                break;
            }
            continue;
        }

        if (v.step == next_step::read_body) {
            if (iequals(header[http::field::expect], "100-continue") && header.version() >= 11) {
                static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
                stream.expires_after(lim.write_timeout);
                auto [wec, wn] = co_await asio::async_write(
                    stream, asio::buffer(cont.data(), cont.size()), nothrow);
                (void)wn;
                if (wec) break;
            }
            const auto fields_before = field_count(header);
            stream.expires_after(lim.body_timeout);
            auto [bec, bn] = co_await http::async_read(stream, buffer, parser, nothrow);
            (void)bn;
            auto bv = after_body(classify_body_read(bec, trailers),
                                 !bec && field_count(parser.get()) != fields_before);
            if (bv.deadline_close) m.deadline_closes.fetch_add(1);
            if (bv.framing_refusal) m.framing_refusals.fetch_add(1);
            if (bv.step == next_step::close) break;
            if (bv.step == next_step::refuse) {
                co_await answer_and_close(stream, ctx.svc.error(bv.status, bv.message), r.label,
                                          lim, meta, head);
                break;
            }
        }

        request req = parser.release();
        if (req[request_id_field] != meta.id) req.set(request_id_field, meta.id);
        // The deadline for store calls; their own timeouts keep a slow store from hanging us.
        stream.expires_never();
        std::optional<response> res;
        try {
            res = co_await ctx.svc.handle(req, r, clock::now() + lim.handler_timeout);
        } catch (const std::exception& e) {
            log::error("handler_failed",
                       {{"what", e.what()}, {"request_id", meta.id}, {"trace_id", meta.trace_id}});
        }
        if (!res) res = ctx.svc.error(http::status::internal_server_error, "Internal server error");
        bool keep =
            keep_after_response(req.keep_alive(), ctx.draining, global_readiness().draining());
        res->version(req.version());
        res->keep_alive(keep);
        auto took = clock::now() - started;
        if (ctx.count_in_metrics || r.label != route_label::unmatched)
            m.request(r.label, res->result_int(), std::chrono::duration<double>(took).count());
        access_log(ctx, req, meta, res->result_int(), took);
        co_await write_response(stream, *res, lim, meta);
        if (!stream.socket().is_open()) break;
        if (!keep) {
            co_await linger(stream);  // a request pipelined behind this one gets no reset
            break;
        }
    }
    close_gracefully(stream);
}

// Answers a connection past the cap with a 503 and closes it, without a coroutine.
void refuse(asio::ip::tcp::socket& socket, service& svc, request_ids& ids) {
    auto res = svc.error(http::status::service_unavailable, "Too many connections");
    res.version(11);
    res.keep_alive(false);
    res.set(http::field::date, http_date());
    res.set(request_id_field, ids.next());
    res.prepare_payload();
    std::ostringstream out;
    out << res;
    auto canned = out.str();
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    socket.write_some(asio::buffer(canned), ec);
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    socket.close(ec);
}

// One listener's accept loop, the same for the API workers and the admin port: a cap on
// open connections (503 past it), a pause after an accept error such as EMFILE so that the
// thread keeps serving what it has, and no exception left to escape: if anything throws,
// the acceptor is closed, so the kernel stops handing it connections nobody would accept.
template <typename Spawn>
asio::awaitable<void> accept_connections(asio::ip::tcp::acceptor& acceptor, std::size_t cap,
                                         std::function<std::size_t()> open, service& svc,
                                         request_ids& ids, Spawn spawn, std::string_view name) {
    auto& m = global_metrics();
    try {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(nothrow);
            if (ec) {
                if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
                log::warn("accept_failed", {{"listener", name}, {"error", ec.message()}});
                asio::steady_timer pause(acceptor.get_executor(), std::chrono::milliseconds(50));
                co_await pause.async_wait(nothrow);
                continue;
            }
            if (open() >= cap) {
                m.connections_refused.fetch_add(1, std::memory_order_relaxed);
                refuse(socket, svc, ids);
                continue;
            }
            boost::system::error_code opt;
            socket.set_option(asio::ip::tcp::no_delay(true), opt);
            spawn(std::move(socket));
        }
    } catch (const std::exception& e) {
        log::error("accept_loop_failed", {{"listener", name}, {"what", e.what()}});
    }
    boost::system::error_code ignored;
    acceptor.close(ignored);
}

}  // namespace

memory_bound connection_memory_bound(const limits& lim) {
    // Measured by tests/e2e/memory_test.cpp; see docs/operations.md for the parts.
    const std::size_t buffer = std::max(lim.max_header_bytes, max_chunk_line) + read_slack;
    const std::size_t fields = lim.max_header_bytes + lim.max_header_fields * 128;
    const std::size_t frames = 16384;  // coroutine frames, the stream, the parser
    // The body as read (capacity capped at the limit) and the largest answer: a project
    // whose every character is escaped as \u00XX in JSON is 6 bytes per code point.
    const std::size_t answer = 6 * 10255 + 1024;
    return {buffer + fields + frames + lim.max_body_bytes + answer, idle_read + frames};
}

class worker {
  public:
    worker(unsigned index, const limits& lim)
        : index_(index),
          limits_(lim),
          log_every_(access_log_every(lim.access_log_sample)),
          ioc_(1) {}

    void bind(const asio::ip::tcp::endpoint& ep, bool reuse_port) {
        acceptor_.emplace(open_acceptor(ioc_, ep, reuse_port));
    }
    std::uint16_t bound_port() const { return acceptor_->local_endpoint().port(); }

    void start(server::service_factory& make) {
        service_ = make(ioc_, index_);
        auto open = [] {
            return static_cast<std::size_t>(
                global_metrics().open_connections.load(std::memory_order_relaxed));
        };
        auto spawn = [this](asio::ip::tcp::socket socket) {
            asio::co_spawn(ioc_,
                           run_connection(beast::tcp_stream(std::move(socket)),
                                          loop_context{*service_, limits_, connections_, draining_,
                                                       true, log_every_, access_counter_, ids_}),
                           [this](std::exception_ptr e) {
                               if (e) log::error("connection_failed");
                               global_metrics().open_connections.fetch_sub(1);
                               --live_;
                               maybe_finish();
                           });
            // Counted once spawned: if co_spawn threw, nothing would count it down.
            auto& m = global_metrics();
            m.open_connections.fetch_add(1, std::memory_order_relaxed);
            m.connections_total.fetch_add(1, std::memory_order_relaxed);
            ++live_;
        };
        asio::co_spawn(ioc_,
                       accept_connections(*acceptor_, limits_.max_connections, open, *service_,
                                          ids_, spawn, "api"),
                       [](std::exception_ptr e) {
                           if (e) log::error("accept_loop_failed", {{"listener", "api"}});
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
    void maybe_finish() {
        if (draining_ && live_ == 0 && !finished_) {
            finished_ = true;
            service_->shutdown();
        }
    }

    unsigned index_;
    const limits& limits_;
    std::uint64_t log_every_;
    // Touched only on this worker's thread: no strand and no lock needed. Declared before
    // ioc_: a forced stop destroys the connections' frames with the io_context, and their
    // slots are erased from this list then.
    std::list<connection_slot> connections_;
    asio::io_context ioc_;
    std::optional<asio::ip::tcp::acceptor> acceptor_;
    std::unique_ptr<service> service_;
    request_ids ids_;
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
    auto bound = connection_memory_bound(limits_);
    global_metrics().memory_bound_active.store(static_cast<std::int64_t>(bound.active));
    global_metrics().memory_bound_idle.store(static_cast<std::int64_t>(bound.idle));
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

// The admin port keeps serving through the whole drain (probes and scrapes until the
// process exits), so it has no draining state of its own.
struct admin_listener::state {
    state(asio::io_context& ioc, const listen_spec& where, limits l, service& s)
        : acceptor(open_acceptor(ioc, resolve_endpoint(where), false)), lim(l), svc(s) {}
    asio::ip::tcp::acceptor acceptor;
    limits lim;
    service& svc;
    std::list<connection_slot> connections;
    const bool draining = false;
    std::uint64_t access_counter = 0;
    request_ids ids;
};

// The state outlives the connection's own frame, which is destroyed first: its slot is
// erased from a list that still exists, also when the io_context is destroyed with it.
asio::awaitable<void> admin_connection(std::shared_ptr<admin_listener::state> s,
                                       beast::tcp_stream stream) {
    // Probes and scrapes would drown the access log: none for the admin port.
    co_await run_connection(std::move(stream),
                            loop_context{s->svc, s->lim, s->connections, s->draining, false, 0,
                                         s->access_counter, s->ids});
}

admin_listener::admin_listener(asio::io_context& ioc, const listen_spec& where, limits lim,
                               service& svc)
    : state_(std::make_shared<state>(ioc, where, lim, svc)) {
    auto s = state_;
    auto open = [s] { return s->connections.size(); };
    auto spawn = [s](asio::ip::tcp::socket socket) {
        asio::co_spawn(s->acceptor.get_executor(),
                       admin_connection(s, beast::tcp_stream(std::move(socket))),
                       [](std::exception_ptr e) {
                           if (e) log::error("connection_failed", {{"listener", "admin"}});
                       });
    };
    asio::co_spawn(ioc,
                   accept_connections(s->acceptor, s->lim.max_admin_connections, open, s->svc,
                                      s->ids, spawn, "admin"),
                   [](std::exception_ptr e) {
                       if (e) log::error("accept_loop_failed", {{"listener", "admin"}});
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
