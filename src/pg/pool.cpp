#include "neptun/pg/pool.hpp"

#include "neptun/pg/key_pins.hpp"

#include <fcntl.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <deque>
#include <random>

#include <boost/asio.hpp>

#include "neptun/net/log.hpp"
#include "neptun/net/metrics.hpp"

namespace neptun::pg {

namespace log = net::log;

int4_buffer::int4_buffer(std::int32_t v) {
    auto u = static_cast<std::uint32_t>(v);
    bytes[0] = static_cast<unsigned char>(u >> 24);
    bytes[1] = static_cast<unsigned char>(u >> 16);
    bytes[2] = static_cast<unsigned char>(u >> 8);
    bytes[3] = static_cast<unsigned char>(u);
}

result::result(kind k, std::string sqlstate, std::string message)
    : kind_(k), sqlstate_(std::move(sqlstate)), message_(std::move(message)) {}
result::result(result&& o) noexcept
    : kind_(o.kind_),
      sqlstate_(std::move(o.sqlstate_)),
      message_(std::move(o.message_)),
      res_(std::exchange(o.res_, nullptr)) {}
result& result::operator=(result&& o) noexcept {
    if (this != &o) {
        if (res_) PQclear(res_);
        kind_ = o.kind_;
        sqlstate_ = std::move(o.sqlstate_);
        message_ = std::move(o.message_);
        res_ = std::exchange(o.res_, nullptr);
    }
    return *this;
}
result::~result() {
    if (res_) PQclear(res_);
}
int result::rows() const {
    return res_ ? PQntuples(res_) : 0;
}
std::string_view result::get(int row, int col) const {
    return {PQgetvalue(res_, row, col), static_cast<std::size_t>(PQgetlength(res_, row, col))};
}
bool result::is_null(int row, int col) const {
    return PQgetisnull(res_, row, col) != 0;
}
void result::adopt(pg_result* r) {
    if (res_) PQclear(res_);
    res_ = r;
}

namespace {

// SQLSTATEs after which the session itself can no longer serve us, whatever we send next:
// the connection is closed (what was in flight on it gets 503) and a new one is opened.
//   25006 read_only_sql_transaction: the server went read-only (a demoted primary, or
//         default_transaction_read_only); a new connection with target_session_attrs
//         finds the writable one.
//   0A000 "cached plan must not change result type": DDL changed a table under a prepared
//         statement; the plan fails the same way on every execution until re-prepared.
//   26000 invalid_sql_statement_name: a prepared statement of ours is gone (DISCARD ALL or
//         DEALLOCATE by a pooler in between, a server-side connection swapped).
//   25001, 25P02: a transaction left open or aborted on the session, which one Sync per
//         request never does itself (a pooler that mixed sessions).
//   57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 57P04
//         database_dropped, and class 08 (connection exceptions).
bool recycles_session(std::string_view sqlstate, std::string_view message) {
    if (sqlstate == "0A000") return message.find("cached plan") != std::string_view::npos;
    return sqlstate == "25006" || sqlstate == "26000" || sqlstate == "25001" ||
           sqlstate == "25P02" || sqlstate == "57P01" || sqlstate == "57P02" ||
           sqlstate == "57P03" || sqlstate == "57P04" || sqlstate.starts_with("08");
}

// SQLSTATE classes that mean "the database cannot serve us right now", not "we sent
// something wrong": connection exceptions, operator intervention (including a statement
// timeout), insufficient resources, system errors, serialization failures and deadlocks,
// and a read-only transaction (a failover in progress).
bool is_outage(std::string_view sqlstate, std::string_view message) {
    if (sqlstate.size() != 5) return true;  // libpq's own errors carry no SQLSTATE
    auto cls = sqlstate.substr(0, 2);
    return cls == "08" || cls == "57" || cls == "53" || cls == "58" || cls == "40" || cls == "XX" ||
           recycles_session(sqlstate, message);
}

void ignore_notice(void*, const char* message) {
    log::debug("pg_notice", {{"message", std::string_view(message)}});
}

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

struct job {
    std::size_t stmt = 0;
    std::span<const param> params;
    clock::time_point deadline;  // the caller gives up then
    clock::time_point queued;
    clock::time_point sent;
    net::completion<result> handler;  // empty once answered
    result res;
    bool got_result = false;
    bool setup = false;        // the per-connection setup: SET and PREPAREs
    bool later_write = false;  // a batch part whose key has a later write in flight
    std::int64_t key = 0;
    std::vector<std::unique_ptr<job>> parts;  // a batch: its statements, then one Sync
    std::size_t results = 0;                  // results seen so far (batches)

    // Someone still waits for this job (or for one of its parts).
    bool waited_for() const {
        if (handler) return true;
        for (const auto& p : parts)
            if (p->handler) return true;
        return false;
    }
};

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
        // When the front of the pipeline last started or made progress (a result came
        // back): what the watchdog measures from.
        clock::time_point front_since;
        std::string recycle;  // why the session is unusable: closed once drained
        // Recycling: takes no new work; what is already in its pipeline runs to its real
        // outcome (the server runs it anyway), then the connection closes.
        bool draining = false;
        PostgresPollingStatusType polling = PGRES_POLLING_WRITING;
        std::deque<std::unique_ptr<job>> inflight;
        unsigned users = 0;  // in-flight jobs that are requests (not setup)
        unsigned attempt = 0;
        bool ever_ready = false;
        clock::time_point connect_deadline;
        asio::steady_timer retry;
        // The host, hostaddr and port lists given to libpq, resolved off the I/O thread.
        std::string host_list, hostaddr_list, port_list;
        unsigned entries = 0;
    };

    impl(asio::io_context& io, options o, std::vector<statement> s)
        : ioc(io),
          opts(std::move(o)),
          statements(std::move(s)),
          tick_timer(io),
          resolver(io),
          rng(std::random_device{}()) {
        parse_hosts();
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
    std::vector<std::unique_ptr<conn>> conns;
    std::deque<std::unique_ptr<job>> waiting;
    key_pins pins;  // key -> the connection with its in-flight writes
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

    // libpq resolves host names with a blocking getaddrinfo(); resolve every host of the
    // (possibly multi-host) conninfo with Asio instead, off the I/O thread, and hand libpq
    // the addresses as a hostaddr list. `host` stays as given, one entry per address, so
    // that TLS verify-full still checks the server's name; IP literals and socket
    // directories need no lookup. A host that does not resolve is left out; libpq tries
    // the remaining entries in order (and target_session_attrs picks among them).
    struct connect_target {
        std::vector<std::string> hosts, ports;
        bool pass_through = false;  // hostaddr given, or no host: libpq does no lookup
    };
    connect_target target_hosts;

    static std::vector<std::string> split(const std::string& s) {
        std::vector<std::string> out;
        std::size_t from = 0;
        while (true) {
            auto comma = s.find(',', from);
            out.push_back(s.substr(from, comma == std::string::npos ? comma : comma - from));
            if (comma == std::string::npos) break;
            from = comma + 1;
        }
        return out;
    }

    void parse_hosts() {
        PQconninfoOption* parsed = PQconninfoParse(opts.conninfo.c_str(), nullptr);
        std::string host, hostaddr, port;
        for (auto* o = parsed; o && o->keyword; ++o) {
            if (!o->val) continue;
            std::string_view k = o->keyword;
            if (k == "host")
                host = o->val;
            else if (k == "hostaddr")
                hostaddr = o->val;
            else if (k == "port")
                port = o->val;
        }
        if (parsed) PQconninfoFree(parsed);
        target_hosts.pass_through = !hostaddr.empty() || host.empty();
        if (target_hosts.pass_through) return;
        target_hosts.hosts = split(host);
        auto ports = split(port);
        for (std::size_t i = 0; i < target_hosts.hosts.size(); ++i)
            target_hosts.ports.push_back(ports.size() == 1  ? ports[0]
                                         : i < ports.size() ? ports[i]
                                                            : std::string());
    }

    void begin_connect(conn& c) {
        if (stopped) return;
        c.st = state::resolving;
        c.connect_deadline = clock::now() + opts.connect_timeout;
        c.host_list.clear();
        c.hostaddr_list.clear();
        c.port_list.clear();
        if (target_hosts.pass_through) {
            open(c);
            return;
        }
        resolve_next(c, 0);
    }

    void add_entry(conn& c, const std::string& host, const std::string& addr,
                   const std::string& port) {
        if (c.entries > 0) {
            c.host_list += ',';
            c.hostaddr_list += ',';
            c.port_list += ',';
        }
        c.host_list += host;
        c.hostaddr_list += addr;
        c.port_list += port;
        ++c.entries;
    }

    void resolve_next(conn& c, std::size_t i) {
        if (i == 0) c.entries = 0;
        const auto& hosts = target_hosts.hosts;
        // Literals and socket directories need no lookup.
        for (; i < hosts.size(); ++i) {
            const auto& h = hosts[i];
            if (h.empty() || h.front() == '/' || h.front() == '@')
                add_entry(c, h, "", target_hosts.ports[i]);
            else if (is_ip_literal(h))
                add_entry(c, h, h, target_hosts.ports[i]);
            else
                break;
        }
        if (i == hosts.size()) {
            if (c.entries == 0) {
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
                        self->add_entry(c, th.hosts[i], e.endpoint().address().to_string(),
                                        th.ports[i]);
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
                        {c.host_list.c_str(), c.hostaddr_list.c_str(), c.port_list.c_str()});
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
        c.recycle.clear();
        c.draining = false;
        c.front_since = clock::now();
        c.inflight.push_back(std::move(setup));
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

    void on_readable(conn& c) {
        if (PQconsumeInput(c.pg) == 0) {
            broken(c, PQerrorMessage(c.pg));
            return;
        }
        int nulls = 0;
        while (!c.inflight.empty() && !PQisBusy(c.pg)) {
            PGresult* r = PQgetResult(c.pg);
            if (!r) {
                if (++nulls > 1) break;  // nothing more until more input arrives
                continue;
            }
            nulls = 0;
            auto status = PQresultStatus(r);
            auto& j = *c.inflight.front();
            c.front_since = clock::now();  // progress: the watchdog starts over
            if (status == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                auto done = std::move(c.inflight.front());
                c.inflight.pop_front();
                if (!done->setup) --c.users;
                unpin(*done);
                if (!c.recycle.empty() && !done->setup && !c.draining) {
                    // This job's transaction failed (nothing of it committed) with an error
                    // that says the session is unusable. What is behind it in the pipeline
                    // the server will still run and may commit, so it is not answered 503
                    // here (a retry could then be overwritten by it): the connection takes
                    // no new work, its pipeline runs out with real outcomes, then it closes.
                    log::warn("pg_recycled", {{"reason", c.recycle}});
                    c.draining = true;
                }
                finished(c, std::move(done));
                if (c.st == state::down) return;  // the setup failed and the connection is gone
                if (c.draining && c.inflight.empty()) {
                    broken(c, c.recycle);
                    return;
                }
                continue;
            }
            // A batch's results come in order, one per part.
            job* target = &j;
            if (!j.parts.empty()) {
                auto index = j.results++;
                if (index < j.parts.size()) target = j.parts[index].get();
            }
            record(c, *target, status, r);
        }
        if (PQstatus(c.pg) == CONNECTION_BAD) {
            broken(c, PQerrorMessage(c.pg));
            return;
        }
        arm_read(c);
    }

    static void record(conn& c, job& j, ExecStatusType status, PGresult* r) {
        if (status == PGRES_FATAL_ERROR) {
            const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            std::string_view sqlstate = state ? state : "";
            std::string_view message = PQresultErrorMessage(r);
            if (c.recycle.empty() && recycles_session(sqlstate, message))
                c.recycle = "session unusable (SQLSTATE " + std::string(sqlstate) + ")";
            if (!j.got_result || j.res.outcome() == result::kind::ok) {
                j.res = result(is_outage(sqlstate, message) ? result::kind::unavailable
                                                            : result::kind::sql_error,
                               std::string(sqlstate), std::string(message));
                j.got_result = true;
            }
            PQclear(r);
        } else if (status == PGRES_PIPELINE_ABORTED) {
            if (!j.got_result) {
                j.res = result(result::kind::unavailable, "", "pipeline aborted");
                j.got_result = true;
            }
            PQclear(r);
        } else if (!j.got_result) {
            j.res = result(result::kind::ok);
            j.res.adopt(r);
            j.got_result = true;
        } else {
            PQclear(r);
        }
    }

    static bool succeeded(const job& j) {
        return j.got_result && j.res.outcome() == result::kind::ok;
    }

    // A batch came back: all committed, or nothing of it did (one implicit transaction).
    // Then each part gets its own outcome, in key order, on the same connection, at the
    // front of it (before anything still waiting), so that one bad statement or a lock
    // conflict with someone else's transaction fails nobody else:
    //  - a part whose own statement failed with an outage (a statement timeout on a lock, a
    //    deadlock, a serialization failure) is answered 503: retrying would only wait again;
    //  - a part whose key has a later write in flight already (sent behind the batch on this
    //    connection) is answered 503 too: sent again now, it would commit after that later
    //    write and overwrite it;
    //  - every other part is sent again alone.
    void batch_finished(conn& c, std::unique_ptr<job> b) {
        // A result for the batch itself can only be an error at commit time.
        bool ok = !b->got_result || b->res.outcome() == result::kind::ok;
        for (auto& p : b->parts) ok = ok && succeeded(*p);
        auto& m = net::global_metrics();
        if (ok) {
            m.pg_batches.fetch_add(1, std::memory_order_relaxed);
            m.pg_batched_statements.fetch_add(b->parts.size(), std::memory_order_relaxed);
            for (auto& p : b->parts) {
                m.pg_latency.observe(std::chrono::duration<double>(clock::now() - b->sent).count());
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
        // Decided for all parts first: the retries below pin their keys again.
        for (auto& p : b->parts)
            p->later_write = p->key != 0 && pins.find(p->key) != key_pins::none;
        for (auto& p : b->parts) {
            if (!p->handler) continue;
            bool own_outage = p->got_result && p->res.outcome() == result::kind::unavailable &&
                              !p->res.sqlstate().empty();
            if (own_outage || p->later_write) {
                m.pg_errors.fetch_add(1, std::memory_order_relaxed);
                answer(*p, own_outage ? std::move(p->res)
                                      : result(result::kind::unavailable, "",
                                               "batch rolled back behind a later write"));
                continue;
            }
            p->got_result = false;
            p->res = result();
            if (c.st == state::ready)
                send(c, std::move(p));
            else
                answer(*p, result(result::kind::unavailable, "", "connection lost"));
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
            if (c.ever_ready) net::global_metrics().pg_reconnects.fetch_add(1);
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
        auto& m = net::global_metrics();
        m.pg_latency.observe(std::chrono::duration<double>(clock::now() - j->sent).count());
        if (!j->got_result) j->res = result(result::kind::unavailable, "", "no result");
        if (j->res.outcome() != result::kind::ok)
            m.pg_errors.fetch_add(1, std::memory_order_relaxed);
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
        auto& m = net::global_metrics();
        for (auto& j : c.inflight) {
            if (j->waited_for()) m.pg_errors.fetch_add(1, std::memory_order_relaxed);
            answer_all(*j, result::kind::unavailable, why);
            unpin(*j);  // lost with the connection: these writes can no longer commit
        }
        c.inflight.clear();
        c.users = 0;
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
        auto base = std::min<std::int64_t>(opts.backoff_max.count(),
                                           opts.backoff_min.count() << std::min(c.attempt, 16u));
        ++c.attempt;
        std::uniform_int_distribution<std::int64_t> jitter(base / 2, base);
        c.retry.expires_after(std::chrono::milliseconds(jitter(rng)));
        c.retry.async_wait([self = shared_from_this(), &c](auto ec) {
            if (!ec && !self->stopped && c.st == state::down) self->begin_connect(c);
        });
    }

    // ---------------------------------------------------------------- dispatch
    conn* least_loaded() {
        conn* best = nullptr;
        for (auto& c : conns)
            if (c->st == state::ready && !c->draining && c->users < opts.pipeline_depth &&
                (!best || c->users < best->users))
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

    // The connection that a job's keys are pinned to: key_pins::none when none is, and
    // `conflict` when they are on two connections (the job waits until one drains).
    static constexpr unsigned conflict = key_pins::none - 1;
    unsigned pinned_to(const job& j) const {
        unsigned to = key_pins::none;
        auto check = [&](std::int64_t k) {
            if (k == 0) return true;
            auto at = pins.find(k);
            if (at == key_pins::none || at == to) return true;
            if (to == key_pins::none) {
                to = at;
                return true;
            }
            return false;
        };
        if (j.parts.empty()) {
            check(j.key);
            return to;
        }
        for (const auto& p : j.parts)
            if (!check(p->key)) return conflict;
        return to;
    }

    // Where a job may go now: the connection its keys are pinned to (if it has room), else
    // the least loaded one; nullptr: it must wait.
    conn* target(const job& j) {
        auto to = pinned_to(j);
        if (to == key_pins::none) return least_loaded();
        if (to == conflict) return nullptr;
        auto& c = *conns[to];
        return c.st == state::ready && !c.draining && c.users < opts.pipeline_depth ? &c : nullptr;
    }

    std::vector<std::unique_ptr<job>> collecting;
    std::vector<std::unique_ptr<job>> group;  // flush_collected's scratch (keeps its capacity)
    bool collect_posted = false;

    void submit(std::unique_ptr<job> j) {
        if (stopped || ready_count == 0) {
            net::global_metrics().pg_errors.fetch_add(1, std::memory_order_relaxed);
            answer(*j, result(result::kind::unavailable, "", "database unavailable"));
            return;
        }
        if (opts.batch && statements[j->stmt].batchable) {
            // Writes that arrive in the same turn of the event loop leave together.
            collecting.push_back(std::move(j));
            if (!collect_posted) {
                collect_posted = true;
                asio::post(ioc, [self = shared_from_this()] { self->flush_collected(); });
            }
            return;
        }
        dispatch(std::move(j));
    }

    void flush_collected() {
        collect_posted = false;
        auto jobs = std::move(collecting);
        collecting.clear();
        std::stable_sort(jobs.begin(), jobs.end(),
                         [](const auto& a, const auto& b) { return a->key < b->key; });
        // Split by the connection each key is pinned to (those with nothing in flight form
        // one more group), so that a batch never needs two connections; then chunks of
        // max_batch, never splitting one key's statements.
        for (unsigned to = 0; to <= conns.size(); ++to) {
            unsigned want = to == conns.size() ? key_pins::none : to;
            group.clear();
            for (auto& j : jobs)
                if (j && pins.find(j->key) == want) group.push_back(std::move(j));
            batch_and_dispatch(group);
        }
        group.clear();
        // The vector's buffer goes back to `collecting` for the next turn.
        jobs.clear();
        if (collecting.empty()) collecting.swap(jobs);
    }

    void batch_and_dispatch(std::vector<std::unique_ptr<job>>& jobs) {
        for (std::size_t i = 0; i < jobs.size();) {
            auto end = std::min(jobs.size(), i + opts.max_batch);
            while (end < jobs.size() && jobs[end]->key == jobs[end - 1]->key) ++end;
            if (end - i == 1) {
                dispatch(std::move(jobs[i]));
                i = end;
                continue;
            }
            auto b = std::make_unique<job>();
            b->deadline = clock::time_point::max();
            b->parts.reserve(end - i);
            for (; i < end; ++i) {
                b->deadline = std::min(b->deadline, jobs[i]->deadline);
                b->parts.push_back(std::move(jobs[i]));
            }
            dispatch(std::move(b));
        }
    }

    void dispatch(std::unique_ptr<job> j) {
        if (stopped || ready_count == 0) {
            net::global_metrics().pg_errors.fetch_add(1, std::memory_order_relaxed);
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
        ++c.users;
        pin(c, *j);
        if (c.inflight.empty()) c.front_since = j->sent;
        c.inflight.push_back(std::move(j));
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
        auto& m = net::global_metrics();
        // Requests that waited for a connection past the limit, or past their deadline.
        while (!waiting.empty()) {
            auto& j = *waiting.front();
            if (j.waited_for() && now < j.queued + opts.wait && now < j.deadline) break;
            if (j.waited_for()) m.pg_errors.fetch_add(1, std::memory_order_relaxed);
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
            if (c.st != state::ready && !(c.st == state::connecting && !c.inflight.empty()))
                continue;
            // What was sent is answered only once its outcome is known (its Sync came back or
            // the connection is gone), never at its deadline: a 503 while it could still
            // commit would let a retry on another connection be overwritten by it. The
            // server's statement_timeout (below the handler timeout) bounds the wait.
            if (!c.inflight.empty() && now > c.front_since + grace)
                broken(c, "no answer within the statement timeout");
        }
    }

    // ---------------------------------------------------------------- gauges
    void update_gauges() {
        std::int64_t in_use = 0, idle = 0;
        for (auto& c : conns) {
            if (c->st != state::ready) continue;
            if (c->users > 0)
                ++in_use;
            else
                ++idle;
        }
        publish_gauges(in_use, idle);
    }

    void publish_gauges(std::int64_t in_use, std::int64_t idle) {
        auto& m = net::global_metrics();
        m.pg_in_use.fetch_add(in_use - published_in_use, std::memory_order_relaxed);
        m.pg_idle.fetch_add(idle - published_idle, std::memory_order_relaxed);
        published_in_use = in_use;
        published_idle = idle;
    }

    std::int64_t published_waiting = 0;
    void publish_waiting() {
        auto n = static_cast<std::int64_t>(waiting.size());
        net::global_metrics().pg_waiting.fetch_add(n - published_waiting,
                                                   std::memory_order_relaxed);
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
        for (auto& j : collecting)
            answer(*j, result(result::kind::unavailable, "", "pool stopped"));
        collecting.clear();
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
