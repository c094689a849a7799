#include "neptun/app/app.hpp"

#include <csignal>
#include <iostream>

#include <boost/asio.hpp>
#include <boost/beast/http.hpp>

#include "neptun/app/config.hpp"
#include "neptun/http/errors.hpp"
#include "neptun/http/router.hpp"
#include "neptun/net/log.hpp"
#include "neptun/net/metrics.hpp"
#include "neptun/net/server.hpp"
#include "neptun/pg/stats.hpp"
#include "neptun/projects/migrate.hpp"
#include "neptun/projects/service.hpp"
#include "neptun/redis/stats.hpp"

namespace neptun::app {
namespace {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace log = net::log;

constexpr std::string_view version = "0.1.0";

// The admin port: liveness, readiness and metrics, never /api.
class admin_service final : public net::service {
  public:
    admin_service()
        : router_({{"/livez", {bhttp::verb::get}, "livez"},
                   {"/readyz", {bhttp::verb::get}, "readyz"},
                   {"/metrics", {bhttp::verb::get}, "metrics"}}) {}

    net::routed route(const net::request& header) override {
        return router_.decide(header.target(), header.method());
    }

    asio::awaitable<net::response> handle(const net::request&, const net::routed& r,
                                          net::clock::time_point) override {
        auto& ready = net::global_readiness();
        switch (r.route) {  // the index into router_'s table
            case livez:
                co_return http::json_response(http::status::ok, R"({"status":"alive"})");
            case readyz:
                co_return http::json_response(
                    ready.ready() ? http::status::ok : http::status::service_unavailable,
                    ready.describe());
            case metrics: {
                net::response res{http::status::ok, 11};
                res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
                // Each layer renders its own: HTTP, Redis, PostgreSQL, the session cache.
                auto& out = res.body();
                out = net::global_metrics().render(ready.ready());
                redis::global_stats().render(out, ready.up(net::readiness::redis));
                pg::global_stats().render(out, ready.up(net::readiness::postgres));
                redis::render_session_cache_metrics(out);
                co_return res;
            }
            default:
                co_return http::error_response(http::problem::not_found);
        }
    }

    net::response error(http::status status, std::string_view message) override {
        return http::error_response(status, message);
    }

  private:
    enum route_index { livez, readyz, metrics };  // router_'s table, in its order
    http::router router_;
};

int serve(const config& cfg) {
    // The layers' options come set from the configuration; what remains is derived: the
    // session cache's whole-process sizes split among the threads, tracking on the sessions'
    // prefix.
    projects::service_options opts = cfg.service;
    if (cfg.session_cache) {
        auto per_thread = [&](std::size_t total) {
            return std::max<std::size_t>(1, total / std::max(1u, cfg.threads));
        };
        opts.redis.cache = redis::session_cache_options{per_thread(cfg.session_cache_entries),
                                                        per_thread(cfg.session_cache_bytes),
                                                        cfg.session_cache_max_age};
        opts.redis.tracking_prefix = opts.session_prefix;
    }
    const net::limits& lim = cfg.http;
    http::set_retry_after(cfg.retry_after_s);

    asio::io_context control(1);
    net::server srv(lim, {cfg.listen.host, cfg.listen.port}, cfg.threads,
                    [&opts](asio::io_context& ioc, unsigned) {
                        return std::make_unique<projects::api_service>(ioc, opts);
                    });
    admin_service admin;
    std::unique_ptr<net::admin_listener> admin_port;
    try {
        admin_port = std::make_unique<net::admin_listener>(
            control, net::listen_spec{cfg.admin_listen.host, cfg.admin_listen.port}, lim, admin);
    } catch (const boost::system::system_error& e) {
        log::error("listen_failed",
                   {{"setting", "NEPTUN_ADMIN_LISTEN"}, {"error", e.code().message()}});
        return 1;
    } catch (const std::exception& e) {
        log::error("listen_failed", {{"setting", "NEPTUN_ADMIN_LISTEN"}, {"error", e.what()}});
        return 1;
    }
    try {
        srv.start([&control] { asio::post(control, [&control] { control.stop(); }); });
    } catch (const boost::system::system_error& e) {
        log::error("listen_failed", {{"setting", "NEPTUN_LISTEN"}, {"error", e.code().message()}});
        return 1;
    } catch (const std::exception& e) {
        log::error("listen_failed", {{"setting", "NEPTUN_LISTEN"}, {"error", e.what()}});
        return 1;
    }
    int exit_code = 0;
    int signals_seen = 0;
    // Installed before "listening" is logged: a SIGTERM sent on that line is a drain.
    asio::signal_set signals(control, SIGTERM, SIGINT);
    asio::steady_timer delay(control), force(control);
    // The admin port keeps answering until the process exits (/readyz 503 all through the
    // drain); it ends with the control loop.
    auto begin_drain = [&] {
        srv.drain();
        log::info("drain_started");  // after the workers were told, so the line means it
        force.expires_after(cfg.shutdown_timeout);
        force.async_wait([&](boost::system::error_code ec) {
            if (ec) return;
            log::warn("shutdown_forced", {{"after_ms", cfg.shutdown_timeout.count()}});
            exit_code = 1;
            srv.stop();
        });
    };
    std::function<void()> wait_signal = [&] {
        signals.async_wait([&](boost::system::error_code ec, int sig) {
            if (ec) return;
            if (++signals_seen > 1) {
                log::warn("shutdown_forced", {{"signal", sig}});
                exit_code = 1;
                srv.stop();
                return;
            }
            // Draining first, so that the line means it (tests await it).
            net::global_readiness().start_draining();
            log::info("shutdown_requested",
                      {{"signal", sig}, {"delay_ms", cfg.shutdown_delay.count()}});
            if (cfg.shutdown_delay.count() == 0) {
                begin_drain();
            } else {
                delay.expires_after(cfg.shutdown_delay);
                delay.async_wait([&](boost::system::error_code e) {
                    if (!e) begin_drain();
                });
            }
            wait_signal();
        });
    };
    wait_signal();
    log::info("listening", {{"port", srv.port()},
                            {"admin_port", admin_port->port()},
                            {"threads", cfg.threads},
                            {"version", version}});
    control.run();
    srv.join();
    log::info("stopped", {{"exit_code", exit_code}});
    return exit_code;
}

}  // namespace

int run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    auto parsed = parse_config(args, env);
    if (auto* err = std::get_if<std::string>(&parsed)) {
        std::cerr << "neptun-api: " << *err << '\n';
        return 2;
    }
    auto& cfg = std::get<config>(parsed);
    switch (cfg.cmd) {
        case command::help:
            std::cout << usage_text();
            return 0;
        case command::version:
            std::cout << "neptun-api " << version << '\n';
            return 0;
        case command::migrate: {
            auto out = projects::migrate(cfg.service.pg.conninfo);
            if (!out.ok) {
                std::cerr << "neptun-api: migrate failed: " << out.error << '\n';
                return 1;
            }
            if (out.created.empty()) std::cout << "migrate: schema is up to date\n";
            for (const auto& c : out.created) std::cout << "migrate: created " << c << '\n';
            return 0;
        }
        case command::serve:
            break;
    }
    net::log::level level = net::log::level::info;
    net::log::parse_level(cfg.log_level, level);
    net::log::configure(
        level, cfg.log_fmt == log_format::json ? net::log::format::json : net::log::format::logfmt);
    std::signal(SIGPIPE, SIG_IGN);  // a closed peer is an error code, not a signal
    net::log::start_async();
    int code = serve(cfg);
    net::log::stop_async();
    return code;
}

}  // namespace neptun::app
