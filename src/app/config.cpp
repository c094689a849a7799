#include "neptun/app/config.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <charconv>
#include <functional>
#include <thread>

#include "neptun/net/log.hpp"
#include "neptun/redis/client.hpp"
#include "neptun/redis/url.hpp"

namespace neptun::app {
namespace {

// A setter returns an empty string on success, or what is wrong with the value.
using setter = std::function<std::string(config&, std::string_view)>;

struct setting {
    std::string_view env;
    std::string_view flag;
    std::string_view help;
    std::function<std::string(const config&)> show;
    setter set;
};

template <typename T>
std::string parse_number(std::string_view v, T min, T max, T& out) {
    T parsed{};
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (ec != std::errc() || p != v.data() + v.size() || parsed < min || parsed > max)
        return "must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
    out = parsed;
    return {};
}

// Where a setting lives in the config: a plain function, so that a row of the table names
// the field once for both reading (--help's default) and writing.
template <typename T>
using field = T& (*)(config&);

template <typename T>
const T& read(field<T> f, const config& c) {
    return f(const_cast<config&>(c));  // only read: the accessor just names the field
}

template <typename T>
setting number(std::string_view env, std::string_view flag, std::string_view help, field<T> f,
               T min, T max) {
    return {env, flag, help, [f](const config& c) { return std::to_string(read(f, c)); },
            [=](config& c, std::string_view v) { return parse_number(v, min, max, f(c)); }};
}

setting duration(std::string_view env, std::string_view flag, std::string_view help,
                 field<milliseconds> f, long min) {
    return {env, flag, help, [f](const config& c) { return std::to_string(read(f, c).count()); },
            [=](config& c, std::string_view v) {
                long ms = 0;
                auto err = parse_number<long>(v, min, 86'400'000L, ms);
                if (err.empty()) f(c) = milliseconds(ms);
                return err;
            }};
}

setting on_off(std::string_view env, std::string_view flag, std::string_view help, field<bool> f) {
    return {env, flag, help,
            [f](const config& c) { return std::string(read(f, c) ? "on" : "off"); },
            [f](config& c, std::string_view v) -> std::string {
                if (v == "on" || v == "true" || v == "1" || v == "yes")
                    f(c) = true;
                else if (v == "off" || v == "false" || v == "0" || v == "no")
                    f(c) = false;
                else
                    return "must be on or off";
                return {};
            }};
}

setter endpoint_setter(endpoint config::*member) {
    return [=](config& c, std::string_view v) -> std::string {
        auto e = parse_endpoint(v);
        if (!e) return "must be host:port with an IP address (0.0.0.0:8080, [::]:8080)";
        c.*member = *e;
        return {};
    };
}

// A readable file, or empty; `unset` is what --help shows for empty.
setting file(std::string_view env, std::string_view flag, std::string_view help,
             field<std::string> f, std::string unset) {
    return {env, flag, help,
            [f, unset](const config& c) { return read(f, c).empty() ? unset : read(f, c); },
            [f](config& c, std::string_view v) -> std::string {
                std::string path(v);
                if (!path.empty() && ::access(path.c_str(), R_OK) != 0)
                    return "cannot read the file";
                f(c) = std::move(path);
                return {};
            }};
}

std::string show_endpoint(const endpoint& e) {
    bool v6 = e.host.find(':') != std::string::npos;
    return (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port);
}

const std::vector<setting>& settings() {
    static const std::vector<setting> s{
        {"NEPTUN_LISTEN", "--listen", "address:port of the API listener (port 0: any free port)",
         [](const config& c) { return show_endpoint(c.listen); }, endpoint_setter(&config::listen)},
        {"NEPTUN_ADMIN_LISTEN", "--admin-listen", "address:port serving /livez, /readyz, /metrics",
         [](const config& c) { return show_endpoint(c.admin_listen); },
         endpoint_setter(&config::admin_listen)},
        {"NEPTUN_THREADS", "--threads",
         "I/O threads, each with its own Redis and PostgreSQL connections",
         [](const config&) { return std::string("number of cores"); },
         [](config& c, std::string_view v) { return parse_number(v, 1u, 256u, c.threads); }},
        {"NEPTUN_REDIS_URL", "--redis-url",
         "redis://[[user]:password@]host:port/db, rediss:// (TLS), unix:///path[?db=N], or "
         "redis+sentinel://host:26379,host2:26379/master/db (see docs/operations.md)",
         [](const config& c) { return c.redis_url; },
         [](config& c, std::string_view v) -> std::string {
             std::string why;
             auto where = redis::parse_url(v, why);
             if (!where) return why;
             c.redis_url = v;
             c.service.redis.where = *where;
             return {};
         }},
        {"NEPTUN_DATABASE_URL", "--database-url", "PostgreSQL: any libpq URI or key=value conninfo",
         [](const config& c) { return c.service.pg.conninfo; },
         [](config& c, std::string_view v) -> std::string {
             char* err = nullptr;
             std::string text(v);
             auto* opts = PQconninfoParse(text.c_str(), &err);
             if (!opts) {
                 // libpq's message quotes the bad part, which may be the password.
                 if (err) PQfreemem(err);
                 return "not a libpq URI or key=value connection string (value not shown: it "
                        "may hold a password)";
             }
             PQconninfoFree(opts);
             c.service.pg.conninfo = std::move(text);
             return {};
         }},
        {"NEPTUN_SESSION_PREFIX", "--session-prefix", "Redis key prefix of the sessions",
         [](const config& c) { return c.service.session_prefix; },
         [](config& c, std::string_view v) -> std::string {
             // Empty would make any JSON string key in the Redis database a session.
             if (v.empty() || v.size() > 256) return "must be 1 to 256 bytes";
             c.service.session_prefix = v;
             return {};
         }},
        on_off("NEPTUN_REQUIRE_IF_MATCH", "--require-if-match",
               "on: a PATCH without If-Match gets 428 (clients must send the ETag they edited)",
               [](config& c) -> bool& { return c.service.require_if_match; }),
        {"NEPTUN_LOG_LEVEL", "--log-level", "debug, info, warn or error",
         [](const config& c) { return c.log_level; },
         [](config& c, std::string_view v) -> std::string {
             net::log::level l;
             if (!net::log::parse_level(v, l)) return "must be debug, info, warn or error";
             c.log_level = v;
             return {};
         }},
        {"NEPTUN_LOG_FORMAT", "--log-format", "logfmt or json, one line per event on stderr",
         [](const config& c) {
             return std::string(c.log_fmt == log_format::json ? "json" : "logfmt");
         },
         [](config& c, std::string_view v) -> std::string {
             if (v == "json")
                 c.log_fmt = log_format::json;
             else if (v == "logfmt")
                 c.log_fmt = log_format::logfmt;
             else
                 return "must be logfmt or json";
             return {};
         }},
        {"NEPTUN_ACCESS_LOG_SAMPLE", "--access-log-sample",
         "fraction of requests with an access log line: 1 all, 0.01 one in a hundred, 0 none",
         [](const config& c) {
             char buf[32];
             std::snprintf(buf, sizeof buf, "%g", c.http.access_log_sample);
             return std::string(buf);
         },
         [](config& c, std::string_view v) -> std::string {
             std::string text(v);
             char* end = nullptr;
             double d = std::strtod(text.c_str(), &end);
             if (text.empty() || *end != '\0' || !(d >= 0.0 && d <= 1.0))
                 return "must be a number from 0 to 1";
             c.http.access_log_sample = d;
             return {};
         }},
        number<std::size_t>(
            "NEPTUN_MAX_CONNECTIONS", "--max-connections",
            "open client connections at most; past it new ones get a 503 and are closed",
            [](config& c) -> std::size_t& { return c.http.max_connections; }, 1, 10'000'000),
        number<std::size_t>(
            "NEPTUN_MAX_HEADER_BYTES", "--max-header-bytes",
            "request line and headers at most (431 past it)",
            [](config& c) -> std::size_t& { return c.http.max_header_bytes; }, 256, 1 << 20),
        number<std::size_t>(
            "NEPTUN_MAX_HEADER_FIELDS", "--max-header-fields",
            "header field lines at most (431 past it); bounds the memory a header can take",
            [](config& c) -> std::size_t& { return c.http.max_header_fields; }, 8, 10000),
        number<std::size_t>(
            "NEPTUN_MAX_BODY_BYTES", "--max-body-bytes", "request body at most (413 past it)",
            [](config& c) -> std::size_t& { return c.http.max_body_bytes; }, 1, 64 << 20),
        duration(
            "NEPTUN_HEADER_TIMEOUT_MS", "--header-timeout-ms", "time to receive a request's header",
            [](config& c) -> milliseconds& { return c.http.header_timeout; }, 1),
        duration(
            "NEPTUN_BODY_TIMEOUT_MS", "--body-timeout-ms", "time to receive a request's body",
            [](config& c) -> milliseconds& { return c.http.body_timeout; }, 1),
        duration(
            "NEPTUN_HANDLER_TIMEOUT_MS", "--handler-timeout-ms",
            "time for the stores to answer a request before it gets a 503",
            [](config& c) -> milliseconds& { return c.http.handler_timeout; }, 1),
        duration(
            "NEPTUN_WRITE_TIMEOUT_MS", "--write-timeout-ms", "time to write a response",
            [](config& c) -> milliseconds& { return c.http.write_timeout; }, 1),
        duration(
            "NEPTUN_IDLE_TIMEOUT_MS", "--idle-timeout-ms",
            "keep-alive connections idle longer are closed",
            [](config& c) -> milliseconds& { return c.http.idle_timeout; }, 1),
        duration(
            "NEPTUN_SHUTDOWN_DELAY_MS", "--shutdown-delay-ms",
            "after SIGTERM, keep serving this long with /readyz 503 before draining",
            [](config& c) -> milliseconds& { return c.shutdown_delay; }, 0),
        duration(
            "NEPTUN_SHUTDOWN_TIMEOUT_MS", "--shutdown-timeout-ms",
            "after the delay, requests in flight get this long before the process exits anyway",
            [](config& c) -> milliseconds& { return c.shutdown_timeout; }, 1),
        number<unsigned>(
            "NEPTUN_RETRY_AFTER_S", "--retry-after-s", "Retry-After seconds on every 503",
            [](config& c) -> unsigned& { return c.retry_after_s; }, 0, 3600),
        duration(
            "NEPTUN_REDIS_CONNECT_TIMEOUT_MS", "--redis-connect-timeout-ms",
            "time to connect to Redis",
            [](config& c) -> milliseconds& { return c.service.redis.connect_timeout; }, 1),
        duration(
            "NEPTUN_REDIS_TIMEOUT_MS", "--redis-timeout-ms",
            "time for a Redis command's reply (then 503)",
            [](config& c) -> milliseconds& { return c.service.redis.command_timeout; }, 1),
        duration(
            "NEPTUN_REDIS_HEALTH_TIMEOUT_MS", "--redis-health-timeout-ms",
            "a Redis connection whose health-check PING (each second) is unanswered this long is "
            "dropped",
            [](config& c) -> milliseconds& { return c.service.redis.health_timeout; }, 1),
        file(
            "NEPTUN_REDIS_TLS_CA_FILE", "--redis-tls-ca-file",
            "rediss://: PEM file of the CAs that sign the server's certificate (empty: the "
            "system's)",
            [](config& c) -> std::string& { return c.service.redis.tls.ca_file; }, "system CAs"),
        file(
            "NEPTUN_REDIS_TLS_CERT_FILE", "--redis-tls-cert-file",
            "rediss://: client certificate (PEM chain), with NEPTUN_REDIS_TLS_KEY_FILE",
            [](config& c) -> std::string& { return c.service.redis.tls.cert_file; },
            "no client certificate"),
        file(
            "NEPTUN_REDIS_TLS_KEY_FILE", "--redis-tls-key-file",
            "rediss://: the client certificate's private key (PEM)",
            [](config& c) -> std::string& { return c.service.redis.tls.key_file; },
            "no client certificate"),
        {"NEPTUN_REDIS_TLS_SERVER_NAME", "--redis-tls-server-name",
         "rediss://: the name the server's certificate must carry (and SNI)",
         [](const config& c) {
             return c.service.redis.tls.server_name.empty() ? std::string("the URL's host")
                                                            : c.service.redis.tls.server_name;
         },
         [](config& c, std::string_view v) -> std::string {
             if (v.size() > 253) return "must be a host name of at most 253 bytes";
             c.service.redis.tls.server_name = v;
             return {};
         }},
        on_off("NEPTUN_SESSION_CACHE", "--session-cache",
               "on: sessions kept in memory while Redis's CLIENT TRACKING reports every change "
               "to them (off where Redis refuses it)",
               [](config& c) -> bool& { return c.session_cache; }),
        number<std::size_t>(
            "NEPTUN_SESSION_CACHE_ENTRIES", "--session-cache-entries",
            "sessions cached at most (whole process, split evenly among the I/O threads; least "
            "recently used go first)",
            [](config& c) -> std::size_t& { return c.session_cache_entries; }, 1, 100'000'000),
        {"NEPTUN_SESSION_CACHE_BYTES", "--session-cache-bytes",
         "memory the cached sessions may take at most (whole process, split evenly among the "
         "I/O threads)",
         [](const config& c) { return std::to_string(c.session_cache_bytes); },
         [](config& c, std::string_view v) {
             return parse_number(v, std::size_t(4096), std::size_t(1) << 40, c.session_cache_bytes);
         }},
        duration(
            "NEPTUN_SESSION_CACHE_MAX_AGE_MS", "--session-cache-max-age-ms",
            "the longest a session is served from memory before Redis is asked again (also "
            "never past the key's TTL)",
            [](config& c) -> milliseconds& { return c.session_cache_max_age; }, 1),
        number<unsigned>(
            "NEPTUN_PG_POOL_SIZE", "--pg-pool-size", "PostgreSQL connections per I/O thread",
            [](config& c) -> unsigned& { return c.service.pg.size; }, 1, 1000),
        number<unsigned>(
            "NEPTUN_PG_PIPELINE_DEPTH", "--pg-pipeline-depth",
            "statements in flight on one PostgreSQL connection at most",
            [](config& c) -> unsigned& { return c.service.pg.pipeline_depth; }, 1, 4096),
        duration(
            "NEPTUN_PG_POOL_WAIT_MS", "--pg-pool-wait-ms",
            "time a request may wait for a PostgreSQL connection (then 503)",
            [](config& c) -> milliseconds& { return c.service.pg.wait; }, 1),
        duration(
            "NEPTUN_PG_STATEMENT_TIMEOUT_MS", "--pg-statement-timeout-ms",
            "PostgreSQL statement_timeout (then 503); below the handler timeout, by default 4/5 of "
            "it",
            [](config& c) -> milliseconds& { return c.service.pg.statement_timeout; }, 1),
        duration(
            "NEPTUN_PG_CONNECT_TIMEOUT_MS", "--pg-connect-timeout-ms",
            "time to connect to PostgreSQL",
            [](config& c) -> milliseconds& { return c.service.pg.connect_timeout; }, 1),
        on_off("NEPTUN_PG_PREPARED", "--pg-prepared",
               "on: named prepared statements; off: unnamed ones (PgBouncer transaction mode)",
               [](config& c) -> bool& { return c.service.pg.prepared; }),
        on_off("NEPTUN_PG_BATCH", "--pg-batch",
               "on: updates that arrive together share one transaction and one commit",
               [](config& c) -> bool& { return c.service.pg.batch; }),
    };
    return s;
}

config defaults() {
    config c;
    unsigned cores = std::thread::hardware_concurrency();
    c.threads = cores == 0 ? 1 : cores;
    c.service.pg.conninfo = "postgresql://postgres@127.0.0.1:5432/neptun";
    std::string why;
    c.service.redis.where = *redis::parse_url(c.redis_url, why);  // a valid default
    return c;
}

// The TLS files together: a certificate needs its key, and OpenSSL must load them.
std::string check_redis_tls(const config& c) {
    std::string why;
    auto url = redis::parse_url(c.redis_url, why);
    if (!url || !url->tls) return {};
    const auto& t = c.service.redis.tls;
    if (t.cert_file.empty() != t.key_file.empty())
        return "invalid NEPTUN_REDIS_TLS_CERT_FILE/NEPTUN_REDIS_TLS_KEY_FILE: give both or neither";
    if (!redis::check_tls(t, why)) return "invalid NEPTUN_REDIS_TLS_* settings: " + why;
    return {};
}

}  // namespace

std::optional<endpoint> parse_endpoint(std::string_view text) {
    endpoint e;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        e.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) return std::nullopt;
        e.host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p > 65535)
        return std::nullopt;
    e.port = static_cast<std::uint16_t>(p);
    // Only IP addresses: a listener binds to one, and resolving here would hide a typo.
    unsigned char addr[16];
    if (inet_pton(AF_INET, e.host.c_str(), addr) != 1 &&
        inet_pton(AF_INET6, e.host.c_str(), addr) != 1)
        return std::nullopt;
    return e;
}

std::vector<setting_doc> settings_help() {
    std::vector<setting_doc> out;
    auto d = defaults();
    for (const auto& s : settings()) out.push_back({s.env, s.flag, s.show(d), s.help});
    return out;
}

std::string usage_text() {
    std::string out =
        "Usage: neptun-api [serve|migrate] [--flag value]...\n"
        "  serve     run the HTTP API (the default)\n"
        "  migrate   create the Neptun schema where it is missing (uses NEPTUN_DATABASE_URL)\n"
        "  --help    this text; --version the version\n\n"
        "Every setting is an environment variable or the matching flag (the flag wins):\n";
    for (const auto& s : settings_help()) {
        out += "  ";
        out += s.flag;
        out += ", ";
        out += s.env;
        out += " (default ";
        out += s.default_value;
        out += ")\n      ";
        out += s.help;
        out += '\n';
    }
    return out;
}

parse_result parse_config(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env) {
    config c = defaults();
    bool statement_timeout_set = false;
    auto apply = [&](const setting& s, std::string_view value, bool from_flag) -> std::string {
        if (s.env == "NEPTUN_PG_STATEMENT_TIMEOUT_MS") statement_timeout_set = true;
        auto err = s.set(c, value);
        if (err.empty()) return {};
        std::string where = from_flag ? std::string(s.flag) + " (" + std::string(s.env) + ")"
                                      : std::string(s.env) + " (" + std::string(s.flag) + ")";
        return "invalid " + where + ": " + err;
    };
    for (const auto& s : settings()) {
        auto it = env.find(std::string(s.env));
        if (it == env.end()) continue;
        if (auto err = apply(s, it->second, false); !err.empty()) return err;
    }
    bool command_seen = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "--help" || a == "-h" || a == "help") {
            c.cmd = command::help;
            return c;
        }
        if (a == "--version") {
            c.cmd = command::version;
            return c;
        }
        if (!a.starts_with("--")) {
            if (command_seen) return "unexpected argument '" + std::string(a) + "'";
            command_seen = true;
            if (a == "serve")
                c.cmd = command::serve;
            else if (a == "migrate")
                c.cmd = command::migrate;
            else
                return "unknown command '" + std::string(a) + "' (serve, migrate)";
            continue;
        }
        std::string_view name = a, value;
        bool has_value = false;
        if (auto eq = a.find('='); eq != std::string_view::npos) {
            name = a.substr(0, eq);
            value = a.substr(eq + 1);
            has_value = true;
        }
        const setting* found = nullptr;
        for (const auto& s : settings())
            if (s.flag == name) found = &s;
        if (!found) return "unknown flag " + std::string(name) + " (see --help)";
        if (!has_value) {
            if (i + 1 >= args.size()) return "flag " + std::string(name) + " needs a value";
            value = args[++i];
        }
        if (auto err = apply(*found, value, true); !err.empty()) return err;
    }
    // The database gives up on a statement before the handler's deadline, so that a request
    // is answered 503 by the statement's own, known failure (nothing committed) rather than
    // left waiting: statement_timeout is 4/5 of the handler timeout unless set, and a value
    // set by hand must stay below it.
    if (!statement_timeout_set)
        c.service.pg.statement_timeout =
            std::max(milliseconds(1), c.http.handler_timeout - c.http.handler_timeout / 5);
    else if (c.service.pg.statement_timeout >= c.http.handler_timeout)
        return "invalid NEPTUN_PG_STATEMENT_TIMEOUT_MS (--pg-statement-timeout-ms): must be "
               "below NEPTUN_HANDLER_TIMEOUT_MS (" +
               std::to_string(c.http.handler_timeout.count()) + ")";
    if (c.cmd == command::serve) {
        if (auto err = check_redis_tls(c); !err.empty()) return err;
    }
    return c;
}

}  // namespace neptun::app
