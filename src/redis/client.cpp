#include "neptun/redis/client.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <deque>
#include <random>

#include <boost/asio.hpp>

#include "neptun/net/log.hpp"
#include "neptun/net/metrics.hpp"

namespace neptun::redis {

namespace log = net::log;
using clock = std::chrono::steady_clock;

namespace {

enum class purpose { user, setup, ping };

struct pending {
    net::completion<reply> handler;  // empty unless purpose::user
    purpose what = purpose::user;
    clock::time_point started;
    clock::time_point deadline;
};

reply to_reply(const redisReply* r) {
    reply out;
    if (r == nullptr) return out;  // unavailable: the connection went away first
    switch (r->type) {
        case REDIS_REPLY_STRING:
        case REDIS_REPLY_STATUS:
            out.type = reply::kind::string;
            out.value.assign(r->str, r->len);
            break;
        case REDIS_REPLY_NIL:
            out.type = reply::kind::nil;
            break;
        case REDIS_REPLY_ERROR:
            out.type = reply::kind::error;
            out.value.assign(r->str, r->len);
            break;
        default:
            out.type = reply::kind::error;
            out.value = "unexpected reply type";
    }
    return out;
}

}  // namespace

struct client::impl : std::enable_shared_from_this<client::impl> {
    enum class state { idle, connecting, setup, ready };

    impl(asio::io_context& io, options o)
        : ioc(io),
          opts(std::move(o)),
          connect_timer(io),
          retry_timer(io),
          tick_timer(io),
          rng(std::random_device{}()) {
        net::global_readiness().mark_down(net::readiness::redis);
    }

    ~impl() {
        if (marked_down) net::global_readiness().mark_up(net::readiness::redis);
    }

    asio::io_context& ioc;
    options opts;
    redisAsyncContext* ac = nullptr;
    std::unique_ptr<asio::posix::stream_descriptor> sd;
    std::uint64_t generation = 0;
    bool want_read = false, want_write = false, reading = false, writing = false;
    state st = state::idle;
    int setup_left = 0;
    std::deque<pending*> fifo;
    asio::steady_timer connect_timer, retry_timer, tick_timer;
    unsigned attempt = 0;
    bool stopped = false;
    bool marked_down = true;
    bool ever_connected = false;
    std::mt19937 rng;

    // --- the hiredis event hooks: they only record interest and arm Asio waits ---
    static void add_read(void* p) {
        auto* self = static_cast<impl*>(p);
        self->want_read = true;
        self->arm_read();
    }
    static void del_read(void* p) { static_cast<impl*>(p)->want_read = false; }
    static void add_write(void* p) {
        auto* self = static_cast<impl*>(p);
        self->want_write = true;
        self->arm_write();
    }
    static void del_write(void* p) { static_cast<impl*>(p)->want_write = false; }
    static void cleanup(void* p) {
        // hiredis is freeing the context: forget it before anything can touch it again.
        auto* self = static_cast<impl*>(p);
        if (self->sd) {
            self->sd->release();  // hiredis owns the fd and closes it
            self->sd.reset();
        }
        self->ac = nullptr;
        ++self->generation;
        self->want_read = self->want_write = self->reading = self->writing = false;
    }

    void arm_read() {
        if (reading || !sd) return;
        reading = true;
        sd->async_wait(asio::posix::descriptor_base::wait_read,
                       [self = shared_from_this(), gen = generation](boost::system::error_code ec) {
                           if (gen != self->generation) return;
                           self->reading = false;
                           if (ec || !self->ac) return;
                           if (self->want_read) redisAsyncHandleRead(self->ac);
                           if (gen == self->generation && self->ac && self->want_read)
                               self->arm_read();
                       });
    }

    void arm_write() {
        if (writing || !sd) return;
        writing = true;
        sd->async_wait(asio::posix::descriptor_base::wait_write,
                       [self = shared_from_this(), gen = generation](boost::system::error_code ec) {
                           if (gen != self->generation) return;
                           self->writing = false;
                           if (ec || !self->ac) return;
                           if (self->want_write) redisAsyncHandleWrite(self->ac);
                           if (gen == self->generation && self->ac && self->want_write)
                               self->arm_write();
                       });
    }

    // --- connection lifecycle ---
    void connect() {
        if (stopped) return;
        st = state::connecting;
        if (!opts.where.unix_path.empty())
            ac = redisAsyncConnectUnix(opts.where.unix_path.c_str());
        else
            ac = redisAsyncConnect(opts.where.host.c_str(), opts.where.port);
        if (ac == nullptr || ac->err) {
            std::string why = ac ? ac->errstr : "out of memory";
            if (ac) redisAsyncFree(ac);
            ac = nullptr;
            lost(why);
            return;
        }
        ac->data = this;
        ac->ev.data = this;
        ac->ev.addRead = &impl::add_read;
        ac->ev.delRead = &impl::del_read;
        ac->ev.addWrite = &impl::add_write;
        ac->ev.delWrite = &impl::del_write;
        ac->ev.cleanup = &impl::cleanup;
        sd = std::make_unique<asio::posix::stream_descriptor>(ioc, ac->c.fd);
        redisAsyncSetConnectCallback(ac, &impl::on_connect);
        redisAsyncSetDisconnectCallback(ac, &impl::on_disconnect);
        // hiredis learns that a non-blocking connect finished from the first write event.
        want_write = true;
        arm_write();
        connect_timer.expires_after(opts.connect_timeout);
        connect_timer.async_wait([self = shared_from_this(), gen = generation](auto ec) {
            if (ec || gen != self->generation) return;
            if (self->st == state::connecting || self->st == state::setup)
                self->drop("connect timeout");
        });
    }

    static void on_connect(const redisAsyncContext* c, int status) {
        auto* self = static_cast<impl*>(c->data);
        if (status != REDIS_OK) {
            // hiredis frees the context right after this callback.
            self->lost(c->errstr ? c->errstr : "connect failed");
            return;
        }
        self->st = state::setup;
        self->setup_left = 0;
        const auto& w = self->opts.where;
        if (!w.password.empty()) {
            if (w.username.empty())
                self->send_internal(purpose::setup, {"AUTH", w.password});
            else
                self->send_internal(purpose::setup, {"AUTH", w.username, w.password});
        }
        if (w.db != 0) self->send_internal(purpose::setup, {"SELECT", std::to_string(w.db)});
        if (self->setup_left == 0) self->became_ready();
    }

    static void on_disconnect(const redisAsyncContext* c, int status) {
        auto* self = static_cast<impl*>(c->data);
        self->lost(status == REDIS_OK ? "closed" : (c->errstr ? c->errstr : "connection lost"));
    }

    void became_ready() {
        st = state::ready;
        connect_timer.cancel();
        if (ever_connected) net::global_metrics().redis_reconnects.fetch_add(1);
        ever_connected = true;
        attempt = 0;
        if (marked_down) {
            marked_down = false;
            net::global_readiness().mark_up(net::readiness::redis);
        }
        log::info("redis_connected", {{"db", opts.where.db}});
        schedule_tick();
    }

    // Every road out of a connection leads here once per connection; it plans the next one.
    void lost(std::string_view why) {
        if (st == state::idle) return;  // this connection's loss is already handled
        bool was_ready = st == state::ready;
        st = state::idle;
        connect_timer.cancel();
        tick_timer.cancel();
        if (!marked_down) {
            marked_down = true;
            net::global_readiness().mark_down(net::readiness::redis);
        }
        if (stopped) return;
        if (was_ready || attempt == 0) log::warn("redis_down", {{"reason", why}});
        auto base = std::min<std::int64_t>(opts.backoff_max.count(), opts.backoff_min.count()
                                                                         << std::min(attempt, 16u));
        ++attempt;
        std::uniform_int_distribution<std::int64_t> jitter(base / 2, base);
        retry_timer.expires_after(std::chrono::milliseconds(jitter(rng)));
        retry_timer.async_wait([self = shared_from_this()](auto ec) {
            if (!ec && !self->stopped && self->st == state::idle && !self->ac) self->connect();
        });
    }

    // Tears the connection down now: pending commands complete as unavailable.
    void drop(std::string_view why) {
        if (!ac) return;
        bool was_connected = (ac->c.flags & REDIS_CONNECTED) != 0;
        log::warn("redis_drop", {{"reason", why}});
        redisAsyncFree(ac);             // runs pending callbacks with no reply, then cleanup()
        if (!was_connected) lost(why);  // hiredis calls on_disconnect only when connected
    }

    void schedule_tick() {
        auto interval = std::min(opts.command_timeout / 4, opts.health_interval);
        if (interval < std::chrono::milliseconds(10)) interval = std::chrono::milliseconds(10);
        tick_timer.expires_after(interval);
        tick_timer.async_wait([self = shared_from_this(), gen = generation](auto ec) {
            if (ec || gen != self->generation || self->st != state::ready) return;
            self->tick();
        });
    }

    clock::time_point last_ping{};

    void tick() {
        auto now = clock::now();
        if (!fifo.empty() && fifo.front()->deadline < now) {
            drop("command timeout");
            return;
        }
        if (now - last_ping >= opts.health_interval) {
            last_ping = now;
            send_internal(purpose::ping, {"PING"});
        }
        schedule_tick();
    }

    // --- commands ---
    bool send(pending* p, std::initializer_list<std::string_view> args) {
        const char* argv[4];
        std::size_t lens[4];
        int argc = 0;
        for (auto a : args) {
            argv[argc] = a.data();
            lens[argc] = a.size();
            ++argc;
        }
        p->started = clock::now();
        p->deadline = p->started + opts.command_timeout;
        if (redisAsyncCommandArgv(ac, &impl::on_reply, p, argc, argv, lens) != REDIS_OK)
            return false;
        fifo.push_back(p);
        return true;
    }

    void send_internal(purpose what, std::initializer_list<std::string> args) {
        auto* p = new pending{};
        p->what = what;
        std::string_view views[4];
        int n = 0;
        for (const auto& a : args) views[n++] = a;
        bool ok = false;
        switch (n) {
            case 1:
                ok = send(p, {views[0]});
                break;
            case 2:
                ok = send(p, {views[0], views[1]});
                break;
            case 3:
                ok = send(p, {views[0], views[1], views[2]});
                break;
        }
        if (!ok) {
            delete p;
            return;
        }
        if (what == purpose::setup) ++setup_left;
    }

    static void on_reply(redisAsyncContext* c, void* r, void* privdata) {
        auto* self = static_cast<impl*>(c->data);
        std::unique_ptr<pending> p(static_cast<pending*>(privdata));
        self->finish(std::move(p), to_reply(static_cast<redisReply*>(r)));
    }

    void finish(std::unique_ptr<pending> p, reply rep) {
        if (!fifo.empty() && fifo.front() == p.get())
            fifo.pop_front();
        else
            fifo.erase(std::remove(fifo.begin(), fifo.end(), p.get()), fifo.end());
        auto& m = net::global_metrics();
        switch (p->what) {
            case purpose::setup:
                if (rep.type != reply::kind::string) {
                    if (rep.type == reply::kind::error)
                        log::error("redis_setup_failed", {{"reply", rep.value}});
                    if (ac) redisAsyncFree(ac);  // deferred by hiredis while in a callback
                    return;
                }
                if (--setup_left == 0 && st == state::setup) became_ready();
                return;
            case purpose::ping:
                if (rep.type == reply::kind::error) drop("PING failed");
                return;
            case purpose::user:
                break;
        }
        m.redis_latency.observe(std::chrono::duration<double>(clock::now() - p->started).count());
        if (rep.type == reply::kind::unavailable || rep.type == reply::kind::error)
            m.redis_errors.fetch_add(1, std::memory_order_relaxed);
        complete(std::move(p->handler), std::move(rep));
    }

    void complete(net::completion<reply> h, reply rep) {
        // Resume the waiting coroutine from the io_context, never from inside hiredis.
        // Every caller runs on this client's single-threaded io_context.
        asio::post(ioc, [h = std::move(h), rep = std::move(rep)]() mutable {
            std::move(h)(std::move(rep));
        });
    }

    void stop() {
        stopped = true;
        connect_timer.cancel();
        retry_timer.cancel();
        tick_timer.cancel();
        if (ac) redisAsyncFree(ac);
    }
};

client::client(asio::io_context& ioc, options opts)
    : impl_(std::make_shared<impl>(ioc, std::move(opts))) {}

client::~client() {
    impl_->stop();
}

void client::start() {
    asio::post(impl_->ioc, [self = impl_] { self->connect(); });
}

void client::stop() {
    impl_->stop();
}

bool client::connected() const {
    return impl_->st == impl::state::ready;
}

void client::start_command(std::string_view verb, std::string_view arg,
                           net::completion<reply> handler) {
    auto& m = net::global_metrics();
    m.redis_commands.fetch_add(1, std::memory_order_relaxed);
    if (impl_->st != impl::state::ready || !impl_->ac) {
        m.redis_errors.fetch_add(1, std::memory_order_relaxed);
        impl_->complete(std::move(handler), reply{});
        return;
    }
    auto p = std::make_unique<pending>();
    p->handler = std::move(handler);
    if (!impl_->send(p.get(), {verb, arg})) {
        m.redis_errors.fetch_add(1, std::memory_order_relaxed);
        impl_->complete(std::move(p->handler), reply{});
        return;
    }
    p.release();  // owned by hiredis's callback list until on_reply
}

}  // namespace neptun::redis
