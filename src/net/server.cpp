#include "neptun/net/server.hpp"

#include <cctype>
#include <list>
#include <random>
#include <system_error>
#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "neptun/net/connection_rules.hpp"
#include "neptun/net/framing.hpp"
#include "neptun/net/log.hpp"
#include "neptun/net/protocol.hpp"
#include "neptun/net/response_head.hpp"
#include "neptun/net/text.hpp"

namespace neptun::net {
namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// Room for a chunk line or a partial read beside the header: the body is copied out of the
// read buffer as it arrives, so the buffer never needs the body limit.
constexpr std::size_t read_slack = 8192;
constexpr std::size_t idle_read = 4096;
constexpr auto slow_request = std::chrono::seconds(1);

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

// Read buffers of the size an idle connection takes for its next request's first bytes come
// from a small per-thread pool: a busy keep-alive connection gives its buffer back each time
// it goes idle and takes one again when the next request arrives, without a malloc and
// free of a 4 KiB block each time (glibc's per-thread cache stops at 1 KiB). The pool keeps
// at most `kept` blocks per thread, so what idle connections hold stays theirs alone.
class read_block_pool {
  public:
    static constexpr std::size_t block = idle_read;
#if defined(__SANITIZE_ADDRESS__)
    // Reused blocks would hide a use after free from ASan: none kept in its builds.
    static constexpr std::size_t kept = 0;
#else
    static constexpr std::size_t kept = 64;
#endif

    static void* take() {
        if constexpr (kept > 0) {
            if (auto* pool = here(); pool && pool->count_ > 0) return pool->free_[--pool->count_];
        }
        return ::operator new(block);
    }
    static void give(void* p) noexcept {
        if constexpr (kept > 0) {
            if (auto* pool = here(); pool && pool->count_ < kept) {
                pool->free_[pool->count_++] = p;
                return;
            }
        }
        ::operator delete(p);
    }

  private:
    read_block_pool() = default;
    ~read_block_pool() {
        gone() = true;
        for (std::size_t i = 0; i < count_; ++i) ::operator delete(free_[i]);
    }
    // This thread's pool, or nothing once the thread's destructors have run it down (a
    // block given back after that is simply freed).
    static read_block_pool* here() {
        if (gone()) return nullptr;
        thread_local read_block_pool pool;
        return &pool;
    }
    static bool& gone() {
        thread_local bool flag = false;  // trivially destructible: readable to the end
        return flag;
    }

    std::array<void*, kept == 0 ? 1 : kept> free_{};
    std::size_t count_ = 0;
};

// The arena of one request's header fields: they are cut from a pooled 4 KiB block while it
// lasts; a field that does not fit gets a heap allocation of its own, freed with it (so a
// long header costs what it did with a node per field, plus the block). Under ASan every
// field is a heap allocation, so that its redzones catch an overrun.
class field_arena final : public std::pmr::memory_resource {
  public:
    field_arena() : block_(static_cast<char*>(read_block_pool::take())) {}
    ~field_arena() override { read_block_pool::give(block_); }
    field_arena(const field_arena&) = delete;
    field_arena& operator=(const field_arena&) = delete;
    std::pmr::polymorphic_allocator<char> allocator() { return this; }

  private:
#if defined(__SANITIZE_ADDRESS__)
    static constexpr bool use_block = false;
#else
    static constexpr bool use_block = true;
#endif

    void* do_allocate(std::size_t bytes, std::size_t align) override {
        if (use_block) {
            std::size_t at = (used_ + align - 1) & ~(align - 1);
            if (at + bytes <= read_block_pool::block) {
                used_ = at + bytes;
                return block_ + at;
            }
        }
        return ::operator new(bytes, std::align_val_t(align));
    }
    void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
        auto at = reinterpret_cast<std::uintptr_t>(p);
        auto begin = reinterpret_cast<std::uintptr_t>(block_);
        if (at >= begin && at < begin + read_block_pool::block) return;  // goes with the block
        ::operator delete(p, bytes, std::align_val_t(align));
    }
    bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
        return this == &other;
    }

    char* block_;
    std::size_t used_ = 0;
};

using request_parser = http::request_parser<http::string_body, request_fields::allocator_type>;

template <typename T>
struct read_allocator {
    using value_type = T;
    read_allocator() = default;
    template <typename U>
    read_allocator(const read_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) {
        if (n * sizeof(T) == read_block_pool::block)
            return static_cast<T*>(read_block_pool::take());
        return static_cast<T*>(::operator new(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        if (n * sizeof(T) == read_block_pool::block)
            read_block_pool::give(p);
        else
            ::operator delete(p);
    }
    friend bool operator==(const read_allocator&, const read_allocator&) { return true; }
};

using read_buffer = beast::basic_flat_buffer<read_allocator<char>>;

// A connection's place in its listener's registry: lets a drain find the idle ones, and the
// idle sweep close those past NEPTUN_IDLE_TIMEOUT_MS.
struct connection_slot {
    beast::tcp_stream* stream = nullptr;
    clock::time_point idle_since{};
    bool idle = false;
    bool expired = false;  // closed by the idle sweep
};

// A listener's connections, touched only from its own thread. Idle connections are timed
// out by one timer per listener rather than one armed timer each (10 000 idle connections
// would otherwise keep 10 000 entries in the timer queue that every request's timers pay
// for): a slot moves to the back of the list when its connection goes idle, so the idle
// slots stand in the order they went idle, and a sweep stops at the first one not yet due.
class connection_registry {
  public:
    using slot = std::list<connection_slot>::iterator;

    explicit connection_registry(clock::duration idle_timeout) : idle_timeout_(idle_timeout) {}
    connection_registry(const connection_registry&) = delete;
    connection_registry& operator=(const connection_registry&) = delete;

    // The sweep's timer runs on `ex`; `forget_timer` before that executor's io_context is
    // destroyed.
    void use_executor(const asio::any_io_executor& ex) { timer_.emplace(ex); }
    void forget_timer() { timer_.reset(); }

    slot add(beast::tcp_stream& stream) { return slots_.insert(slots_.end(), {&stream}); }
    void remove(slot s) { slots_.erase(s); }
    std::size_t size() const { return slots_.size(); }

    // `again`: a wait after a wake-up that found nothing to read, which keeps the time the
    // connection went idle (and its place).
    // Returns false once the registry has stopped (the drain, or the admin listener going):
    // the connection is then closed rather than left waiting with nobody to time it out.
    bool go_idle(slot s, bool again = false) {
        if (stopped_) return false;
        s->idle = true;
        s->expired = false;
        if (!again) {
            s->idle_since = clock::now();
            slots_.splice(slots_.end(), slots_, s);
        }
        if (!armed_) arm(s->idle_since + idle_timeout_);
        return true;
    }
    // Returns whether the sweep timed the connection out while it waited.
    bool wake(slot s) {
        s->idle = false;
        return std::exchange(s->expired, false);
    }

    // The drain: every idle connection's wait is cancelled and the sweep stops, so that the
    // io_context runs out of work once the busy ones are done.
    void close_idle() {
        stopped_ = true;
        if (timer_) timer_->cancel();
        for (auto& s : slots_)
            if (s.idle) cancel(s);
    }

  private:
    static void cancel(connection_slot& s) {
        boost::system::error_code ec;
        s.stream->socket().cancel(ec);
    }

    void arm(clock::time_point at) {
        if (!timer_) return;
        armed_ = true;
        timer_->expires_at(at);
        timer_->async_wait([alive = std::weak_ptr<connection_registry*>(self_)](
                               const boost::system::error_code& ec) {
            auto self = alive.lock();
            if (!self) return;  // the registry is gone
            (*self)->armed_ = false;
            if (!ec) (*self)->sweep();
        });
    }

    void sweep() {
        if (stopped_) return;
        const auto now = clock::now();
        for (auto& s : slots_) {
            if (!s.idle || s.expired) continue;
            auto due = s.idle_since + idle_timeout_;
            if (due > now) {
                arm(due);
                return;
            }
            s.expired = true;
            cancel(s);
        }
    }

    clock::duration idle_timeout_;
    std::list<connection_slot> slots_;
    std::optional<asio::steady_timer> timer_;
    std::shared_ptr<connection_registry*> self_ = std::make_shared<connection_registry*>(this);
    bool armed_ = false;
    bool stopped_ = false;
};

// Holds a registry entry for exactly as long as the connection runs, on every path out.
class slot_guard {
  public:
    slot_guard(connection_registry& registry, beast::tcp_stream& stream)
        : registry_(registry), slot_(registry.add(stream)) {}
    ~slot_guard() { registry_.remove(slot_); }
    slot_guard(const slot_guard&) = delete;
    slot_guard& operator=(const slot_guard&) = delete;
    connection_registry::slot get() const { return slot_; }

  private:
    connection_registry& registry_;
    connection_registry::slot slot_;
};

// Request ids of one listener thread: a random prefix per thread and a counter, unique
// across the fleet with overwhelming likelihood and cheap to make.
class request_ids {
  public:
    static constexpr std::size_t max_size = 40;
    request_ids() {
        std::random_device rd;
        auto r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
        std::snprintf(prefix_, sizeof prefix_, "%016llx", static_cast<unsigned long long>(r));
    }
    // Writes the next id into `out` (max_size bytes), returns its length.
    std::size_t next(char* out) {
        int n = std::snprintf(out, max_size, "%s-%llx", prefix_,
                              static_cast<unsigned long long>(++counter_));
        return static_cast<std::size_t>(n);
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
    connection_registry& connections;
    const bool& draining;
    bool count_in_metrics;
    std::uint64_t log_every;  // access lines: one in N requests, 0 none
    std::uint64_t& access_counter;
    request_ids& ids;
};

// The request's identity for its response and its log lines (CONTRACT.md §1.3), held
// without a heap allocation.
class request_meta {
  public:
    std::string_view id() const { return {id_, id_size_}; }
    std::string_view trace_id;  // into the request's header; empty if none

    void identify(const request& header, request_ids& ids) {
        auto given = header[request_id_field];
        if (acceptable_request_id(given)) {  // at most 128 characters
            id_size_ = given.copy(id_, sizeof id_);
        } else {
            id_size_ = ids.next(id_);
        }
        if (auto t = trace_id_of(header["traceparent"])) trace_id = *t;
    }

  private:
    static_assert(request_ids::max_size <= 128);
    char id_[128];
    std::size_t id_size_ = 0;
};

bool has_body(const request& req) {
    return req.chunked() || req.has_content_length();
}

std::size_t field_count(const request& header) {
    return static_cast<std::size_t>(std::distance(header.begin(), header.end()));
}

// One gather write: the head we format ourselves (response_head.hpp) and the body as it is.
asio::awaitable<void> write_response(beast::tcp_stream& stream, const response& res,
                                     unsigned version, bool keep_alive, bool head,
                                     const limits& lim, const request_meta& meta) {
    const response_framing framing{version, keep_alive, head, http_date(), meta.id()};
    std::string bytes_of_head;
    bytes_of_head.reserve(384);
    const bool body = append_response_head(bytes_of_head, res, framing);
    std::array<asio::const_buffer, 2> bytes{asio::buffer(bytes_of_head),
                                            body ? asio::buffer(res.body()) : asio::const_buffer()};
    stream.expires_after(lim.write_timeout);
    auto [ec, n] = co_await asio::async_write(stream, bytes, nothrow);
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
asio::awaitable<void> answer_and_close(beast::tcp_stream& stream, const response& res,
                                       route_label label, const limits& lim,
                                       const request_meta& meta, bool head = false) {
    global_metrics().request(label, res.result_int(), 0);
    co_await write_response(stream, res, 11, false, head, lim, meta);
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
                        {"request_id", meta.id()}});
        else
            log::write(l, event,
                       {{"method", method},
                        {"path", target},
                        {"status", status},
                        {"duration_us", us},
                        {"request_id", meta.id()},
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
asio::awaitable<header_result> read_header(beast::tcp_stream& stream, read_buffer& buffer,
                                           request_parser& parser, const limits& lim) {
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

// One request on a connection, from its first bytes in `buffer` to its response. Returns
// whether the connection goes on. A frame of its own, so that an idle connection holds none
// of the parser's state.
asio::awaitable<bool> serve_request(beast::tcp_stream& stream, read_buffer& buffer,
                                    const loop_context& ctx) {
    const auto& lim = ctx.lim;
    auto& m = global_metrics();
    auto started = clock::now();

    // Before the parser and the request it gives up: the fields live in it.
    field_arena arena;
    request_parser parser(std::piecewise_construct, std::make_tuple(),
                          std::make_tuple(arena.allocator()));
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
        if (size == 0 && extensions.data() && extensions.data() + extensions.size() + 4 <= end &&
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
    request_meta meta;
    meta.identify(header, ctx.ids);
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
    if (v.step == next_step::close) co_return false;
    if (v.step == next_step::refuse) {
        co_await answer_and_close(stream, ctx.svc.error(v.status, v.message), label, lim, meta,
                                  head);
        co_return false;
    }
    if (v.step == next_step::answer_early) {
        const auto& res = *r.early;
        auto took = clock::now() - started;
        m.request(label, res.result_int(), std::chrono::duration<double>(took).count());
        access_log(ctx, header, meta, res.result_int(), took);
        co_await write_response(stream, res, header.version(), v.keep, head, lim, meta);
        if (!v.keep) {
            co_await linger(stream);  // a body, or a pipelined request, may be coming
            co_return false;
        }
        co_return true;
    }

    if (v.step == next_step::read_body) {
        if (iequals(header[http::field::expect], "100-continue") && header.version() >= 11) {
            static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
            stream.expires_after(lim.write_timeout);
            auto [wec, wn] =
                co_await asio::async_write(stream, asio::buffer(cont.data(), cont.size()), nothrow);
            (void)wn;
            if (wec) co_return false;
        }
        const auto fields_before = field_count(header);
        stream.expires_after(lim.body_timeout);
        auto [bec, bn] = co_await http::async_read(stream, buffer, parser, nothrow);
        (void)bn;
        auto bv = after_body(classify_body_read(bec, trailers),
                             !bec && field_count(parser.get()) != fields_before);
        if (bv.deadline_close) m.deadline_closes.fetch_add(1);
        if (bv.framing_refusal) m.framing_refusals.fetch_add(1);
        if (bv.step == next_step::close) co_return false;
        if (bv.step == next_step::refuse) {
            co_await answer_and_close(stream, ctx.svc.error(bv.status, bv.message), r.label, lim,
                                      meta, head);
            co_return false;
        }
    }

    request req = parser.release();
    r.request_id = meta.id();
    r.trace_id = meta.trace_id;
    // The deadline for store calls; their own timeouts keep a slow store from hanging us.
    stream.expires_never();
    std::optional<response> res;
    try {
        res = co_await ctx.svc.handle(req, r, clock::now() + lim.handler_timeout);
    } catch (const std::exception& e) {
        log::error("handler_failed",
                   {{"what", e.what()}, {"request_id", meta.id()}, {"trace_id", meta.trace_id}});
    }
    if (!res) res = ctx.svc.error(http::status::internal_server_error, "Internal server error");
    bool keep = keep_after_response(req.keep_alive(), ctx.draining, global_readiness().draining());
    auto took = clock::now() - started;
    if (ctx.count_in_metrics || r.label != route_label::unmatched)
        m.request(r.label, res->result_int(), std::chrono::duration<double>(took).count());
    access_log(ctx, req, meta, res->result_int(), took);
    co_await write_response(stream, *res, req.version(), keep, head, lim, meta);
    if (!stream.socket().is_open()) co_return false;
    if (!keep) {
        co_await linger(stream);  // a request pipelined behind this one gets no reset
        co_return false;
    }
    co_return true;
}

// Idle connections wait for readability with no buffer and no timer of their own (the
// registry's sweep times them out); the buffer is allocated when the next request comes.
asio::awaitable<void> run_connection(beast::tcp_stream stream, loop_context ctx) {
    slot_guard slot(ctx.connections, stream);
    read_buffer buffer(std::max(ctx.lim.max_header_bytes, max_chunk_line) + read_slack);
    bool again = false;  // waiting on after a wake-up with nothing to read
    for (;;) {
        if (buffer.size() == 0) {
            if (ctx.draining) break;
            buffer.shrink_to_fit();
            stream.expires_never();
            if (!ctx.connections.go_idle(slot.get(), again)) break;
            auto [ec] = co_await stream.socket().async_wait(asio::socket_base::wait_read, nothrow);
            const bool expired = ctx.connections.wake(slot.get());
            if (ec) {
                // Timed out by the sweep, cancelled by the drain, or the socket failed. (A wait
                // that completed before the sweep cancelled it serves its request.)
                if (expired) global_metrics().deadline_closes.fetch_add(1);
                break;
            }
            // The request's first bytes are there: read them without waiting (the socket is
            // non-blocking, set at accept).
            boost::system::error_code rec;
            auto n = stream.socket().read_some(buffer.prepare(idle_read), rec);
            again = rec == asio::error::would_block || rec == asio::error::try_again;
            if (again && expired) {  // woken for nothing, and past the timeout meanwhile
                global_metrics().deadline_closes.fetch_add(1);
                break;
            }
            if (again) continue;
            if (rec) break;  // the client closed, or reset
            buffer.commit(n);
        }
        if (!co_await serve_request(stream, buffer, ctx)) break;
    }
    close_gracefully(stream);
}

// Answers a connection past the cap with a 503 and closes it, without a coroutine.
void refuse(asio::ip::tcp::socket& socket, service& svc, request_ids& ids) {
    auto res = svc.error(http::status::service_unavailable, "Too many connections");
    char id[request_ids::max_size];
    const std::string_view request_id(id, ids.next(id));
    std::string canned;
    if (append_response_head(canned, res, {11, false, false, http_date(), request_id}))
        canned += res.body();
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
            try {
                if (open() >= cap) {
                    m.connections_refused.fetch_add(1, std::memory_order_relaxed);
                    refuse(socket, svc, ids);
                    continue;
                }
                boost::system::error_code opt;
                socket.set_option(asio::ip::tcp::no_delay(true), opt);
                // The first read after an idle wait must never block the thread.
                socket.non_blocking(true, opt);
                if (opt) continue;  // closed: it could not be served safely
                spawn(std::move(socket));
            } catch (...) {
                // Out of the group before this connection is closed: a client that reacts to
                // the close by connecting again must not land on this listener.
                boost::system::error_code ignored;
                acceptor.close(ignored);
                throw;
            }
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
    // Idle: the connection's own frame, the stream and its reactor state, the registry
    // slot (no read buffer: an idle connection waits for readability without one).
    const std::size_t idle_frames = 4096;
    // The body as read (capacity capped at the limit) and the largest answer: a project
    // whose every character is escaped as \u00XX in JSON is 6 bytes per code point.
    const std::size_t answer = 6 * 10255 + 1024;
    return {buffer + fields + frames + lim.max_body_bytes + answer, idle_frames};
}

class worker {
  public:
    worker(unsigned index, const limits& lim)
        : index_(index),
          limits_(lim),
          log_every_(access_log_every(lim.access_log_sample)),
          connections_(lim.idle_timeout),
          ioc_(1) {
        connections_.use_executor(ioc_.get_executor());
    }
    // The sweep's timer goes before the io_context does; the slots stay for the frames that
    // the io_context destroys.
    ~worker() { connections_.forget_timer(); }

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
            connections_.close_idle();
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
    connection_registry connections_;
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
        : acceptor(open_acceptor(ioc, resolve_endpoint(where), false)),
          lim(l),
          svc(s),
          connections(l.idle_timeout) {
        connections.use_executor(ioc.get_executor());
    }
    asio::ip::tcp::acceptor acceptor;
    limits lim;
    service& svc;
    connection_registry connections;
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
    // Run on the io_context's thread, or once it has stopped. It may outlive the state's
    // last user: no sweep from here on; idle waits are cancelled (they end if the io_context
    // runs again, else with it), and busy connections close instead of going idle.
    state_->connections.close_idle();
    state_->connections.forget_timer();
}

std::uint16_t admin_listener::port() const {
    return state_->acceptor.local_endpoint().port();
}

void admin_listener::close() {
    boost::system::error_code ec;
    state_->acceptor.close(ec);
}

}  // namespace neptun::net
