// The pool's I/O driver: libpq sockets on Asio, timers and metrics. What it decides comes
// from pure pieces with their own unit tests: the connection's pipeline state machine
// (pipeline.hpp: which job a result belongs to, recycling, a failed batch's retry rules,
// the watchdog's start), the batcher and the pins (batcher.hpp, key_pins.hpp), and the
// connector's host lists and back-off (connector.hpp).
#include "neptun/pg/pool.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <deque>
#include <random>

#include <boost/asio.hpp>

#include "neptun/net/log.hpp"
#include "neptun/net/metrics.hpp"
#include "neptun/pg/batcher.hpp"
#include "neptun/pg/connector.hpp"
#include "neptun/pg/key_pins.hpp"
#include "neptun/pg/pipeline.hpp"
#include "neptun/pg/stats.hpp"

namespace neptun::pg {

namespace log = net::log;

namespace {

void ignore_notice(void*, const char* message) {
    log::debug("pg_notice", {{"message", std::string_view(message)}});
}

std::string_view error_field(const PGresult* r, int field) {
    const char* v = PQresultErrorField(r, field);
    return v ? v : "";
}

}  // namespace

struct pool::impl : std::enable_shared_from_this<pool::impl> {
    enum class state { down, resolving, connecting, ready };

    struct conn {
        explicit conn(asio::io_context& io) : retry(io) {}
        PGconn* pg = nullptr;
        std::unique_ptr<asio::posix::stream_descriptor> sd;
        int fd = -1;
        state st = state::down;
        std::uint64_t gen = 0;
        unsigned index = 0;  // in conns, as key_pins names it
        bool reading = false, writing = false, flush_posted = false;
        PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
        pipeline jobs;  // what was sent on this connection, front first
        unsigned attempt = 0;
        bool ever_ready = false;
        clock::time_point connect_deadline;
        asio::steady_timer retry;
        host_lists lists;  // given to libpq, resolved off the I/O thread

        // Takes new work: ready, not draining for a recycle, pipeline not full.
        bool open_for(unsigned depth) const {
            return st == state::ready && !jobs.draining() && jobs.users() < depth;
        }
    };

    impl(asio::io_context& io, options o, std::vector<statement> s)
        : ioc(io),
          opts(std::move(o)),
          statements(std::move(s)),
          target_hosts(parse_connect_target(opts.conninfo)),
          collector(opts.max_batch),
          tick_timer(io),
          resolver(io),
          rng(std::random_device{}()) {
        for (unsigned i = 0; i < std::max(1u, opts.size); ++i) {
            conns.push_back(std::make_unique<conn>(io));
            conns.back()->index = i;
        }
        net::global_readiness().mark_down(net::readiness::postgres);
    }

    ~impl() {
        if (marked_down) net::global_readiness().mark_up(net::readiness::postgres);
        publish_gauges(0, 0);
    }

    asio::io_context& ioc;
    options opts;
    std::vector<statement> statements;
    connect_target target_hosts;
    std::vector<std::unique_ptr<conn>> conns;
    std::deque<std::unique_ptr<job>> waiting;
    key_pins pins;      // key -> the connection with its in-flight writes
    batcher collector;  // batchable writes of this turn of the event loop
    asio::steady_timer tick_timer;
    asio::ip::tcp::resolver resolver;
    std::mt19937 rng;
    bool stopped = false;
    bool marked_down = true;
    unsigned ready_count = 0;
    std::int64_t published_in_use = 0, published_idle = 0;

    // ---------------------------------------------------------------- connecting
    void start() {
        for (auto& c : conns) begin_connect(*c);
        schedule_tick();
    }

    void begin_connect(conn& c) {
        if (stopped) return;
        c.st = state::resolving;
        c.connect_deadline = clock::now() + opts.connect_timeout;
        c.lists.clear();
        if (target_hosts.pass_through) {
            open(c);
            return;
        }
        resolve_next(c, 0);
    }

    // Hosts in order; a host that does not resolve is left out, libpq tries the remaining
    // entries in order (and target_session_attrs picks among them).
    void resolve_next(conn& c, std::size_t i) {
        if (i == 0) c.lists.clear();
        const auto& hosts = target_hosts.hosts;
        for (; i < hosts.size(); ++i) {
            const auto& h = hosts[i];
            auto kind = classify_host(h);
            if (kind == host_kind::name) break;
            c.lists.add(h, kind == host_kind::literal ? h : "", target_hosts.ports[i]);
        }
        if (i == hosts.size()) {
            if (c.lists.entries == 0) {
                broken(c, "cannot resolve any database host");
                return;
            }
            open(c);
            return;
        }
        const auto& port = target_hosts.ports[i];
        resolver.async_resolve(
            hosts[i], port.empty() ? "5432" : port,
            [self = shared_from_this(), &c, i, gen = c.gen](
                boost::system::error_code ec, asio::ip::tcp::resolver::results_type r) {
                if (self->stopped || gen != c.gen || c.st != state::resolving) return;
                const auto& th = self->target_hosts;
                if (ec || r.empty()) {
                    log::warn("pg_resolve_failed",
                              {{"host", th.hosts[i]}, {"reason", ec.message()}});
                } else {
                    int n = 0;
                    for (const auto& e : r) {
                        if (n++ == 4) break;  // enough addresses of one host
                        c.lists.add(th.hosts[i], e.endpoint().address().to_string(), th.ports[i]);
                    }
                }
                self->resolve_next(c, i + 1);
            });
    }

    void open(conn& c) {
        c.st = state::connecting;
        std::vector<const char*> keys{"dbname", "fallback_application_name"};
        std::vector<const char*> vals{opts.conninfo.c_str(), "neptun-api"};
        if (!target_hosts.pass_through) {
            keys.insert(keys.end(), {"host", "hostaddr", "port"});
            vals.insert(vals.end(),
                        {c.lists.host.c_str(), c.lists.hostaddr.c_str(), c.lists.port.c_str()});
        }
        keys.push_back(nullptr);
        vals.push_back(nullptr);
        c.pg = PQconnectStartParams(keys.data(), vals.data(), 1);
        if (!c.pg || PQstatus(c.pg) == CONNECTION_BAD) {
            broken(c, c.pg ? PQerrorMessage(c.pg) : "out of memory");
            return;
        }
        PQsetNoticeProcessor(c.pg, &ignore_notice, nullptr);
        c.polling = PGRES_POLLING_WRITING;
        continue_connect(c);
    }

    // Wraps libpq's socket for Asio. Asio gets a dup() of it, never libpq's own number:
    // libpq closes its socket by itself (a read that meets EOF, the next host or address
    // inside one PQconnectPoll, target_session_attrs, an SSL fallback), and the number is
    // then free for any thread to reuse. Every epoll_ctl Asio makes is on our dup, which
    // stays open until we deregister it, so no registration can ever name another file.
    // While connecting the socket is wrapped anew after every PQconnectPoll (`always`):
    // libpq's new socket may have the old one's number.
    void watch_socket(conn& c, bool always = false) {
        int fd = PQsocket(c.pg);
        if (!always && fd == c.fd && c.sd) return;
        release_socket(c);
        if (fd < 0) return;
        int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (own < 0) return;  // EMFILE: the caller sees no socket and breaks the connection
        c.fd = fd;
        c.sd = std::make_unique<asio::posix::stream_descriptor>(ioc, own);
    }

    void release_socket(conn& c) {
        if (c.sd) {
            ::close(c.sd->release());  // deregistered from epoll first, then closed
            c.sd.reset();
        }
        c.fd = -1;
        c.reading = c.writing = false;
        ++c.gen;
    }

    void continue_connect(conn& c) {
        watch_socket(c, true);
        if (!c.sd) {
            broken(c, "no socket");
            return;
        }
        auto what = c.polling == PGRES_POLLING_READING ? asio::posix::descriptor_base::wait_read
                                                       : asio::posix::descriptor_base::wait_write;
        c.sd->async_wait(what, [self = shared_from_this(), &c, gen = c.gen](auto ec) {
            if (ec || gen != c.gen || c.st != state::connecting) return;
            c.polling = PQconnectPoll(c.pg);
            switch (c.polling) {
                case PGRES_POLLING_OK:
                    self->connected(c);
                    break;
                case PGRES_POLLING_FAILED:
                    self->broken(c, PQerrorMessage(c.pg));
                    break;
                default:
                    self->continue_connect(c);
            }
        });
    }

    void connected(conn& c) {
        watch_socket(c, true);
        if (PQsetnonblocking(c.pg, 1) != 0 || PQenterPipelineMode(c.pg) != 1) {
            broken(c, PQerrorMessage(c.pg));
            return;
        }
        // One round trip: session settings and every prepared statement, then a Sync.
        auto setup = std::make_unique<job>();
        setup->setup = true;
        setup->sent = clock::now();
        std::string timeout = std::to_string(opts.statement_timeout.count());
        const char* values[1] = {timeout.c_str()};
        bool ok = PQsendQueryParams(c.pg,
                                    "SELECT set_config('TimeZone', 'UTC', false), "
                                    "set_config('statement_timeout', $1, false)",
                                    1, nullptr, values, nullptr, nullptr, 0) == 1;
        if (opts.prepared)
            for (const auto& s : statements)
                ok = ok && PQsendPrepare(c.pg, s.name.c_str(), s.sql.c_str(), 0, nullptr) == 1;
        ok = ok && PQpipelineSync(c.pg) == 1;
        if (!ok) {
            broken(c, PQerrorMessage(c.pg));
            return;
        }
        c.jobs.reset();
        c.jobs.push(std::move(setup), clock::now());
        flush(c);
        arm_read(c);
    }

    // ---------------------------------------------------------------- I/O
    void arm_read(conn& c) {
        if (c.reading || !c.sd) return;
        c.reading = true;
        c.sd->async_wait(asio::posix::descriptor_base::wait_read,
                         [self = shared_from_this(), &c, gen = c.gen](auto ec) {
                             if (gen != c.gen) return;
                             c.reading = false;
                             if (ec) return;
                             self->on_readable(c);
                         });
    }

    void arm_write(conn& c) {
        if (c.writing || !c.sd) return;
        c.writing = true;
        c.sd->async_wait(asio::posix::descriptor_base::wait_write,
                         [self = shared_from_this(), &c, gen = c.gen](auto ec) {
                             if (gen != c.gen) return;
                             c.writing = false;
                             if (ec) return;
                             self->flush(c);
                         });
    }

    void flush(conn& c) {
        if (!c.pg) return;
        int r = PQflush(c.pg);
        if (r < 0)
            broken(c, PQerrorMessage(c.pg));
        else if (r == 1)
            arm_write(c);
    }

    // Statements sent in one turn of the event loop leave in one write.
    void schedule_flush(conn& c) {
        if (c.flush_posted) return;
        c.flush_posted = true;
        asio::post(ioc, [self = shared_from_this(), &c, gen = c.gen] {
            c.flush_posted = false;
            if (gen == c.gen) self->flush(c);
        });
    }

    // Feeds libpq's results to the connection's pipeline state machine and carries out
    // what it decides.
    void on_readable(conn& c) {
        if (PQconsumeInput(c.pg) == 0) {
            broken(c, PQerrorMessage(c.pg));
            return;
        }
        int nulls = 0;
        while (!c.jobs.empty() && !PQisBusy(c.pg)) {
            PGresult* r = PQgetResult(c.pg);
            if (!r) {
                if (++nulls > 1) break;  // nothing more until more input arrives
                continue;
            }
            nulls = 0;
            auto now = clock::now();
            switch (PQresultStatus(r)) {
                case PGRES_PIPELINE_SYNC: {
                    PQclear(r);
                    auto done = c.jobs.on_sync(now);
                    unpin(*done.done);
                    // This job's transaction failed (nothing of it committed) with an error
                    // that says the session is unusable: see pipeline::completed.
                    if (done.began_draining)
                        log::warn("pg_recycled", {{"reason", c.jobs.recycle_reason()}});
                    finished(c, std::move(done.done));
                    if (c.st == state::down) return;  // the setup failed: the connection is gone
                    if (c.jobs.drained()) {
                        broken(c, c.jobs.recycle_reason());
                        return;
                    }
                    continue;
                }
                case PGRES_FATAL_ERROR: {
                    auto sqlstate = error_field(r, PG_DIAG_SQLSTATE);
                    auto e = classify_error(sqlstate, error_field(r, PG_DIAG_SOURCE_FILE));
                    c.jobs.on_error(result(e.kind, std::string(sqlstate), PQresultErrorMessage(r)),
                                    e, now);
                    PQclear(r);
                    continue;
                }
                case PGRES_PIPELINE_ABORTED:
                    PQclear(r);
                    c.jobs.on_aborted(now);
                    continue;
                case PGRES_BAD_RESPONSE:
                case PGRES_NONFATAL_ERROR:
                    // Not a result we can vouch for: never an "ok". What was in flight is
                    // answered 503 and the connection starts over.
                    PQclear(r);
                    broken(c, "PostgreSQL sent a response libpq could not read");
                    return;
                default: {
                    result ok(result::kind::ok);
                    ok.adopt(r);
                    c.jobs.on_rows(std::move(ok), now);
                }
            }
        }
        if (PQstatus(c.pg) == CONNECTION_BAD) {
            broken(c, PQerrorMessage(c.pg));
            return;
        }
        arm_read(c);
    }

    // A batch came back: all committed, or nothing of it did (one implicit transaction).
    // Then each part gets its own outcome (settle_batch), in key order, on the same
    // connection, at the front of it (before anything still waiting), so that one bad
    // statement or a lock conflict with someone else's transaction fails nobody else.
    void batch_finished(conn& c, std::unique_ptr<job> b) {
        auto& m = global_stats();
        if (batch_committed(*b)) {  // the common case: every part answered, nothing to settle
            m.batches.fetch_add(1, std::memory_order_relaxed);
            m.batched_statements.fetch_add(b->parts.size(), std::memory_order_relaxed);
            for (auto& p : b->parts) {
                m.latency.observe(std::chrono::duration<double>(clock::now() - b->sent).count());
                answer(*p, std::move(p->res));
            }
            return;
        }
        for (auto& p : b->parts) {
            if (p->got_result && p->res.outcome() != result::kind::ok) {
                log::warn("pg_batch_retried",
                          {{"statements", b->parts.size()}, {"sqlstate", p->res.sqlstate()}});
                break;
            }
        }
        // Decided for all parts first: the resends below pin their keys again.
        auto fates = settle_batch(*b, pins);
        for (std::size_t i = 0; i < b->parts.size(); ++i) {
            auto& p = b->parts[i];
            switch (fates[i]) {
                case part_fate::answer:
                case part_fate::abandoned:
                    break;
                case part_fate::own_outage:
                    m.errors.fetch_add(1, std::memory_order_relaxed);
                    answer(*p, std::move(p->res));
                    break;
                case part_fate::later_write:
                    m.errors.fetch_add(1, std::memory_order_relaxed);
                    answer(*p, result(result::kind::unavailable, "",
                                      "batch rolled back behind a later write"));
                    break;
                case part_fate::resend:
                    p->got_result = false;
                    p->res = result();
                    if (c.st == state::ready)
                        send(c, std::move(p));
                    else
                        answer(*p, result(result::kind::unavailable, "", "connection lost"));
            }
        }
    }

    void finished(conn& c, std::unique_ptr<job> j) {
        if (j->setup) {
            if (j->got_result && j->res.outcome() != result::kind::ok) {
                log::error("pg_setup_failed",
                           {{"sqlstate", j->res.sqlstate()}, {"message", j->res.message()}});
                broken(c, "setup failed");
                return;
            }
            c.st = state::ready;
            c.attempt = 0;
            if (c.ever_ready) global_stats().reconnects.fetch_add(1);
            c.ever_ready = true;
            if (++ready_count == 1 && marked_down) {
                marked_down = false;
                net::global_readiness().mark_up(net::readiness::postgres);
                log::info("pg_connected");
            }
            pump();
            update_gauges();
            return;
        }
        if (!j->parts.empty()) {
            batch_finished(c, std::move(j));
            pump();
            update_gauges();
            return;
        }
        auto& m = global_stats();
        m.latency.observe(std::chrono::duration<double>(clock::now() - j->sent).count());
        if (!j->got_result) j->res = result(result::kind::unavailable, "", "no result");
        if (j->res.outcome() != result::kind::ok) m.errors.fetch_add(1, std::memory_order_relaxed);
        answer(*j, std::move(j->res));
        pump();
        update_gauges();
    }

    // Answers a job and, for a batch, each of its parts (with the same kind of outcome).
    void answer_all(job& j, result::kind k, const std::string& why) {
        for (auto& p : j.parts) answer(*p, result(k, "", why));
        answer(j, result(k, "", why));
    }

    void answer(job& j, result r) {
        if (!j.handler) return;  // already answered (timed out while in flight)
        asio::post(ioc, [h = std::move(j.handler), r = std::move(r)]() mutable {
            std::move(h)(std::move(r));
        });
        j.handler = {};
    }

    // Closes a connection, answers what was in flight as unavailable (their commits are
    // unknown: never a 200), and plans the reconnect.
    void broken(conn& c, std::string why) {
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        bool was_ready = c.st == state::ready;
        release_socket(c);
        if (c.pg) {
            PQfinish(c.pg);
            c.pg = nullptr;
        }
        c.st = state::down;
        c.flush_posted = false;
        auto& m = global_stats();
        for (auto& j : c.jobs.take_all()) {
            if (j->waited_for()) m.errors.fetch_add(1, std::memory_order_relaxed);
            answer_all(*j, result::kind::unavailable, why);
            unpin(*j);  // lost with the connection: these writes can no longer commit
        }
        if (was_ready && --ready_count == 0) {
            if (!marked_down) {
                marked_down = true;
                net::global_readiness().mark_down(net::readiness::postgres);
            }
            // Nobody can take the waiting requests now: fail them fast.
            for (auto& j : waiting) answer_all(*j, result::kind::unavailable, why);
            waiting.clear();
            publish_waiting();
        }
        update_gauges();
        if (stopped) return;  // an orderly stop is not an outage
        // Jobs that waited on this connection's pins may go elsewhere now.
        if (ready_count > 0)
            asio::post(ioc, [self = shared_from_this()] {
                if (!self->stopped) self->pump();
            });
        if (was_ready || c.attempt == 0) log::warn("pg_down", {{"reason", why}});
        auto ceiling = backoff_ceiling(c.attempt, opts.backoff_min, opts.backoff_max).count();
        ++c.attempt;
        std::uniform_int_distribution<std::int64_t> jitter(ceiling / 2, ceiling);
        c.retry.expires_after(std::chrono::milliseconds(jitter(rng)));
        c.retry.async_wait([self = shared_from_this(), &c](auto ec) {
            if (!ec && !self->stopped && c.st == state::down) self->begin_connect(c);
        });
    }

    // ---------------------------------------------------------------- dispatch
    conn* least_loaded() {
        conn* best = nullptr;
        for (auto& c : conns)
            if (c->open_for(opts.pipeline_depth) && (!best || c->jobs.users() < best->jobs.users()))
                best = c.get();
        return best;
    }

    // ---------------------------------------------------------------- one order per key
    void pin(conn& c, const job& j) {
        if (j.parts.empty()) {
            if (j.key != 0) pins.pin(j.key, c.index);
            return;
        }
        for (const auto& p : j.parts)
            if (p->key != 0) pins.pin(p->key, c.index);
    }

    void unpin(const job& j) {
        if (j.parts.empty()) {
            if (j.key != 0) pins.unpin(j.key);
            return;
        }
        for (const auto& p : j.parts)
            if (p->key != 0) pins.unpin(p->key);
    }

    // Where a job may go now: the connection its keys are pinned to (if it has room), else
    // the least loaded one; nullptr: it must wait.
    conn* target(const job& j) {
        auto to = pinned_to(j, pins);
        if (to == key_pins::none) return least_loaded();
        if (to == pin_conflict) return nullptr;
        auto& c = *conns[to];
        return c.open_for(opts.pipeline_depth) ? &c : nullptr;
    }

    void submit(std::unique_ptr<job> j) {
        if (stopped || ready_count == 0) {
            global_stats().errors.fetch_add(1, std::memory_order_relaxed);
            answer(*j, result(result::kind::unavailable, "", "database unavailable"));
            return;
        }
        if (opts.batch && statements[j->stmt].batchable) {
            // Writes that arrive in the same turn of the event loop leave together.
            if (collector.add(std::move(j)))  // the first of this turn schedules the cut
                asio::post(ioc, [self = shared_from_this()] { self->flush_collected(); });
            return;
        }
        dispatch(std::move(j));
    }

    void flush_collected() {
        for (auto& j : collector.cut(pins, static_cast<unsigned>(conns.size())))
            dispatch(std::move(j));
    }

    void dispatch(std::unique_ptr<job> j) {
        if (stopped || ready_count == 0) {
            global_stats().errors.fetch_add(1, std::memory_order_relaxed);
            answer_all(*j, result::kind::unavailable, "database unavailable");
            return;
        }
        j->queued = clock::now();
        if (waiting.empty()) {
            if (auto* c = target(*j)) {
                send(*c, std::move(j));
                update_gauges();
                return;
            }
        }
        waiting.push_back(std::move(j));
        publish_waiting();
    }

    void pump() {
        while (!waiting.empty()) {
            if (!waiting.front()->waited_for()) {
                waiting.pop_front();
                continue;
            }
            // First in, first out: a job that must wait for its key's connection holds up
            // those behind it, so none of them overtakes an earlier write of its key.
            auto* c = target(*waiting.front());
            if (!c) break;
            auto j = std::move(waiting.front());
            waiting.pop_front();
            send(*c, std::move(j));
        }
        publish_waiting();
    }

    bool send_statement(conn& c, const job& j) {
        const char* values[16];
        int lengths[16];
        int formats[16];
        int n = static_cast<int>(std::min<std::size_t>(j.params.size(), 16));
        for (int i = 0; i < n; ++i) {
            const auto& p = j.params[static_cast<std::size_t>(i)];
            values[i] = p.null ? nullptr : p.data;
            lengths[i] = p.length;
            formats[i] = 1;
        }
        const auto& s = statements[j.stmt];
        return (opts.prepared
                    ? PQsendQueryPrepared(c.pg, s.name.c_str(), n, values, lengths, formats, 0)
                    : PQsendQueryParams(c.pg, s.sql.c_str(), n, nullptr, values, lengths, formats,
                                        0)) == 1;
    }

    void send(conn& c, std::unique_ptr<job> j) {
        bool ok;
        if (j->parts.empty()) {
            ok = send_statement(c, *j);
        } else {
            // No BEGIN/COMMIT: the statements before one Sync form one implicit transaction,
            // committed at the Sync, or rolled back whole if one fails (and the connection is
            // clean again after the Sync, which an explicit block would not be).
            ok = true;
            for (const auto& p : j->parts) ok = ok && send_statement(c, *p);
        }
        if (!ok || PQpipelineSync(c.pg) != 1) {
            std::string why = PQerrorMessage(c.pg);
            answer_all(*j, result::kind::unavailable, why);
            broken(c, why);
            return;
        }
        j->sent = clock::now();
        pin(c, *j);
        c.jobs.push(std::move(j), clock::now());
        schedule_flush(c);
    }

    // ---------------------------------------------------------------- time
    void schedule_tick() {
        auto interval = std::clamp(opts.wait / 4, std::chrono::milliseconds(10),
                                   std::chrono::milliseconds(100));
        tick_timer.expires_after(interval);
        tick_timer.async_wait([self = shared_from_this()](auto ec) {
            if (ec || self->stopped) return;
            self->tick();
            self->schedule_tick();
        });
    }

    void tick() {
        auto now = clock::now();
        auto& m = global_stats();
        // Requests that waited for a connection past the limit, or past their deadline.
        while (!waiting.empty()) {
            auto& j = *waiting.front();
            if (j.waited_for() && now < j.queued + opts.wait && now < j.deadline) break;
            if (j.waited_for()) m.errors.fetch_add(1, std::memory_order_relaxed);
            answer_all(j, result::kind::unavailable, "pool wait exceeded");
            waiting.pop_front();
        }
        publish_waiting();
        // The server cancels a statement at statement_timeout; one that outlives it by far
        // means the connection is dead without having said so.
        auto grace = opts.statement_timeout + std::chrono::milliseconds(2000);
        for (auto& cp : conns) {
            auto& c = *cp;
            if ((c.st == state::connecting || c.st == state::resolving) &&
                now > c.connect_deadline) {
                broken(c, "connect timeout");
                continue;
            }
            if (c.st != state::ready && !(c.st == state::connecting && !c.jobs.empty())) continue;
            // What was sent is answered only once its outcome is known (its Sync came back or
            // the connection is gone), never at its deadline: a 503 while it could still
            // commit would let a retry on another connection be overwritten by it. The
            // server's statement_timeout (below the handler timeout) bounds the wait.
            if (c.jobs.stalled(now, grace)) broken(c, "no answer within the statement timeout");
        }
    }

    // ---------------------------------------------------------------- gauges
    void update_gauges() {
        std::int64_t in_use = 0, idle = 0;
        for (auto& c : conns) {
            if (c->st != state::ready) continue;
            if (c->jobs.users() > 0)
                ++in_use;
            else
                ++idle;
        }
        publish_gauges(in_use, idle);
    }

    void publish_gauges(std::int64_t in_use, std::int64_t idle) {
        auto& m = global_stats();
        m.in_use.fetch_add(in_use - published_in_use, std::memory_order_relaxed);
        m.idle.fetch_add(idle - published_idle, std::memory_order_relaxed);
        published_in_use = in_use;
        published_idle = idle;
    }

    std::int64_t published_waiting = 0;
    void publish_waiting() {
        auto n = static_cast<std::int64_t>(waiting.size());
        global_stats().waiting.fetch_add(n - published_waiting, std::memory_order_relaxed);
        published_waiting = n;
    }

    void stop() {
        if (stopped) return;
        stopped = true;
        tick_timer.cancel();
        resolver.cancel();
        for (auto& c : conns) {
            c->retry.cancel();
            if (c->st != state::down || c->pg) broken(*c, "pool stopped");
        }
        for (auto& j : waiting) answer_all(*j, result::kind::unavailable, "pool stopped");
        waiting.clear();
        for (auto& j : collector.take_all())
            answer(*j, result(result::kind::unavailable, "", "pool stopped"));
        publish_waiting();
    }
};

pool::pool(asio::io_context& ioc, options opts, std::vector<statement> statements)
    : impl_(std::make_shared<impl>(ioc, std::move(opts), std::move(statements))) {}

pool::~pool() {
    impl_->stop();
}

void pool::start() {
    asio::post(impl_->ioc, [self = impl_] { self->start(); });
}

void pool::stop() {
    impl_->stop();
}

unsigned pool::ready_connections() const {
    return impl_->ready_count;
}

void pool::submit(std::size_t index, std::span<const param> params, clock::time_point deadline,
                  std::int64_t key, net::completion<result> handler) {
    auto j = std::make_unique<job>();
    j->stmt = index;
    j->key = key;
    j->params = params;
    j->deadline = deadline;
    j->handler = std::move(handler);
    impl_->submit(std::move(j));
}

}  // namespace neptun::pg
