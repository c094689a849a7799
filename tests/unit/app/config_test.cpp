// Runtime configuration (CONTRACT §3): environment variables with matching flags, the flag
// winning; a bad value is one line naming the variable.
#include <boost/test/unit_test.hpp>

#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

#include "neptun/app/config.hpp"

namespace {

using neptun::app::command;
using neptun::app::config;
using neptun::app::parse_config;
using neptun::app::parse_endpoint;

using args_t = std::vector<std::string>;
using env_t = std::map<std::string, std::string>;

config parse_ok(const args_t& args, const env_t& env) {
    auto r = parse_config(args, env);
    const auto* err = std::get_if<std::string>(&r);
    BOOST_TEST_REQUIRE(!err, "refused: " << (err ? *err : std::string()));
    return std::get<config>(r);
}

std::string parse_error(const args_t& args, const env_t& env) {
    auto r = parse_config(args, env);
    const auto* err = std::get_if<std::string>(&r);
    BOOST_TEST_REQUIRE(err != nullptr, "accepted, expected an error");
    return *err;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(app_config)

BOOST_AUTO_TEST_CASE(settings_land_in_the_options_of_their_layer) {
    // The defaults are the layers' own.
    auto d = parse_ok({}, {});
    BOOST_TEST(d.service.redis.where.host == "127.0.0.1");
    BOOST_TEST(d.service.redis.where.port == 6379u);
    BOOST_TEST(d.service.redis.command_timeout.count() == 1000);
    BOOST_TEST(d.http.idle_timeout.count() == 30000);
    BOOST_TEST(d.service.pg.size == 4u);
    BOOST_TEST(d.service.pg.statement_timeout.count() == 4000);  // 4/5 of the handler's 5 s
    // Each variable writes its layer's field, nothing in between.
    auto c = parse_ok({"--redis-url", "redis://:pw@10.0.0.9:7001/3"},
                      {{"NEPTUN_REDIS_TIMEOUT_MS", "750"},
                       {"NEPTUN_REDIS_TLS_SERVER_NAME", "cache.internal"},
                       {"NEPTUN_MAX_HEADER_FIELDS", "50"},
                       {"NEPTUN_IDLE_TIMEOUT_MS", "1234"},
                       {"NEPTUN_PG_PIPELINE_DEPTH", "7"},
                       {"NEPTUN_PG_BATCH", "off"},
                       {"NEPTUN_REQUIRE_IF_MATCH", "on"}});
    BOOST_TEST(c.service.redis.where.host == "10.0.0.9");
    BOOST_TEST(c.service.redis.where.port == 7001u);
    BOOST_TEST(c.service.redis.where.db == 3u);
    BOOST_TEST(c.service.redis.where.password == "pw");
    BOOST_TEST(c.service.redis.command_timeout.count() == 750);
    BOOST_TEST(c.service.redis.tls.server_name == "cache.internal");
    BOOST_TEST(c.http.max_header_fields == 50u);
    BOOST_TEST(c.http.idle_timeout.count() == 1234);
    BOOST_TEST(c.service.pg.pipeline_depth == 7u);
    BOOST_TEST(!c.service.pg.batch);
    BOOST_TEST(c.service.require_if_match);
}

BOOST_AUTO_TEST_CASE(defaults_with_an_empty_environment) {
    auto c = parse_ok({}, {});
    BOOST_TEST((c.cmd == command::serve));
    BOOST_TEST(c.listen.host == "0.0.0.0");
    BOOST_TEST(c.listen.port == 8080u);
    BOOST_TEST(c.admin_listen.host == "0.0.0.0");
    BOOST_TEST(c.admin_listen.port == 9090u);
    unsigned cores = std::thread::hardware_concurrency();
    BOOST_TEST(c.threads == (cores == 0 ? 1u : cores));
    BOOST_TEST(c.redis_url == "redis://127.0.0.1:6379/0");
    BOOST_TEST(c.service.pg.conninfo == "postgresql://postgres@127.0.0.1:5432/neptun");
    BOOST_TEST(c.service.session_prefix == "neptun:session:");
    BOOST_TEST(c.log_level == "info");
    BOOST_TEST(c.http.max_header_bytes == 8192u);
    BOOST_TEST(c.http.max_body_bytes == 65536u);
    BOOST_TEST(c.retry_after_s == 1u);
}

BOOST_AUTO_TEST_CASE(environment_sets_each_setting) {
    auto c = parse_ok({}, {{"NEPTUN_LISTEN", "127.0.0.1:18080"},
                           {"NEPTUN_ADMIN_LISTEN", "[::1]:19090"},
                           {"NEPTUN_THREADS", "3"},
                           {"NEPTUN_REDIS_URL", "redis://:pw@10.0.0.1:7000/2"},
                           {"NEPTUN_DATABASE_URL", "postgresql://u@db.internal:6432/x"},
                           {"NEPTUN_SESSION_PREFIX", "sess:"},
                           {"NEPTUN_LOG_LEVEL", "debug"},
                           {"NEPTUN_LOG_FORMAT", "json"},
                           {"NEPTUN_ACCESS_LOG_SAMPLE", "0.01"},
                           {"NEPTUN_MAX_HEADER_BYTES", "4096"},
                           {"NEPTUN_MAX_BODY_BYTES", "1024"},
                           {"NEPTUN_HANDLER_TIMEOUT_MS", "250"},
                           {"NEPTUN_RETRY_AFTER_S", "5"},
                           {"NEPTUN_PG_PREPARED", "off"},
                           {"NEPTUN_PG_POOL_SIZE", "8"}});
    BOOST_TEST(c.listen.host == "127.0.0.1");
    BOOST_TEST(c.listen.port == 18080u);
    BOOST_TEST(c.admin_listen.host == "::1");
    BOOST_TEST(c.admin_listen.port == 19090u);
    BOOST_TEST(c.threads == 3u);
    BOOST_TEST(c.redis_url == "redis://:pw@10.0.0.1:7000/2");
    BOOST_TEST(c.service.pg.conninfo == "postgresql://u@db.internal:6432/x");
    BOOST_TEST(c.service.session_prefix == "sess:");
    BOOST_TEST(c.log_level == "debug");
    BOOST_TEST((c.log_fmt == neptun::app::log_format::json));
    BOOST_TEST(c.http.access_log_sample == 0.01);
    BOOST_TEST(c.http.max_header_bytes == 4096u);
    BOOST_TEST(c.http.max_body_bytes == 1024u);
    BOOST_TEST(c.http.handler_timeout.count() == 250);
    BOOST_TEST(c.retry_after_s == 5u);
    BOOST_TEST(!c.service.pg.prepared);
    BOOST_TEST(c.service.pg.size == 8u);
}

// The database gives up before the handler: statement_timeout is 4/5 of the handler
// timeout unless set, and one set by hand must be below it.
BOOST_AUTO_TEST_CASE(the_statement_timeout_stays_below_the_handler_timeout) {
    BOOST_TEST(parse_ok({}, {}).service.pg.statement_timeout.count() == 4000);
    BOOST_TEST(parse_ok({}, {}).http.handler_timeout.count() == 5000);
    BOOST_TEST(parse_ok({}, {{"NEPTUN_HANDLER_TIMEOUT_MS", "1000"}})
                   .service.pg.statement_timeout.count() == 800);
    BOOST_TEST(
        parse_ok({"--handler-timeout-ms", "2000"}, {}).service.pg.statement_timeout.count() ==
        1600);
    BOOST_TEST(parse_ok({}, {{"NEPTUN_PG_STATEMENT_TIMEOUT_MS", "4999"}})
                   .service.pg.statement_timeout.count() == 4999);
    BOOST_TEST(
        parse_ok({"--pg-statement-timeout-ms", "100"}, {{"NEPTUN_HANDLER_TIMEOUT_MS", "400"}})
            .service.pg.statement_timeout.count() == 100);
    BOOST_TEST(parse_error({}, {{"NEPTUN_PG_STATEMENT_TIMEOUT_MS", "5000"}}) ==
               "invalid NEPTUN_PG_STATEMENT_TIMEOUT_MS (--pg-statement-timeout-ms): must be below "
               "NEPTUN_HANDLER_TIMEOUT_MS (5000)");
    BOOST_TEST(contains(
        parse_error({"--handler-timeout-ms", "300"}, {{"NEPTUN_PG_STATEMENT_TIMEOUT_MS", "400"}}),
        "must be below NEPTUN_HANDLER_TIMEOUT_MS (300)"));
}

BOOST_AUTO_TEST_CASE(environment_outside_neptun_is_ignored) {
    auto c = parse_ok({}, {{"PATH", "/usr/bin"}, {"NEPTUN_UNKNOWN_THING", "x"}});
    BOOST_TEST(c.listen.port == 8080u);
}

BOOST_AUTO_TEST_CASE(flag_overrides_environment) {
    env_t env{{"NEPTUN_THREADS", "3"}, {"NEPTUN_LOG_LEVEL", "warn"}};
    auto spaced = parse_ok({"--threads", "5", "--log-level", "error"}, env);
    BOOST_TEST(spaced.threads == 5u);
    BOOST_TEST(spaced.log_level == "error");
    auto joined = parse_ok({"--threads=6", "--log-level=debug"}, env);
    BOOST_TEST(joined.threads == 6u);
    BOOST_TEST(joined.log_level == "debug");
    auto env_only = parse_ok({}, env);
    BOOST_TEST(env_only.threads == 3u);
    BOOST_TEST(env_only.log_level == "warn");
}

BOOST_AUTO_TEST_CASE(flag_value_may_contain_equals_signs) {
    auto c = parse_ok({"--database-url=host=db port=5432 dbname=neptun"}, {});
    BOOST_TEST(c.service.pg.conninfo == "host=db port=5432 dbname=neptun");
    auto spaced = parse_ok({"--database-url", "host=db port=5432"}, {});
    BOOST_TEST(spaced.service.pg.conninfo == "host=db port=5432");
}

BOOST_AUTO_TEST_CASE(flags_for_listeners) {
    auto c = parse_ok({"--listen", "127.0.0.1:0", "--admin-listen=[::]:9191"}, {});
    BOOST_TEST(c.listen.host == "127.0.0.1");
    BOOST_TEST(c.listen.port == 0u);
    BOOST_TEST(c.admin_listen.host == "::");
    BOOST_TEST(c.admin_listen.port == 9191u);
}

BOOST_AUTO_TEST_CASE(commands) {
    BOOST_TEST((parse_ok({"migrate"}, {}).cmd == command::migrate));
    BOOST_TEST((parse_ok({"serve"}, {}).cmd == command::serve));
    BOOST_TEST((parse_ok({}, {}).cmd == command::serve));
    auto m = parse_ok({"migrate", "--database-url", "postgresql://x@h/db"}, {});
    BOOST_TEST((m.cmd == command::migrate));
    BOOST_TEST(m.service.pg.conninfo == "postgresql://x@h/db");
    BOOST_TEST((parse_ok({"--threads", "2", "migrate"}, {}).cmd == command::migrate));
    BOOST_TEST((parse_ok({"--help"}, {}).cmd == command::help));
    BOOST_TEST((parse_ok({"-h"}, {}).cmd == command::help));
    BOOST_TEST((parse_ok({"serve", "--help"}, {}).cmd == command::help));
    BOOST_TEST((parse_ok({"--version"}, {}).cmd == command::version));
}

BOOST_AUTO_TEST_CASE(bad_environment_values_name_the_variable) {
    struct bad {
        std::string_view var;
        std::string_view value;
    };
    const std::string long_prefix(257, 'a');
    for (auto [var, value] : std::vector<bad>{
             {"NEPTUN_THREADS", "0"},
             {"NEPTUN_THREADS", "abc"},
             {"NEPTUN_THREADS", ""},
             {"NEPTUN_THREADS", "-1"},
             {"NEPTUN_THREADS", "3x"},
             {"NEPTUN_LISTEN", "nope"},
             {"NEPTUN_LISTEN", "localhost:8080"},
             {"NEPTUN_LISTEN", "0.0.0.0:99999"},
             {"NEPTUN_ADMIN_LISTEN", "9090"},
             {"NEPTUN_REDIS_URL", "http://x"},
             {"NEPTUN_REDIS_URL", "redis://h:0"},
             {"NEPTUN_DATABASE_URL", "nope"},
             {"NEPTUN_LOG_LEVEL", "loud"},
             {"NEPTUN_LOG_LEVEL", ""},
             {"NEPTUN_LOG_FORMAT", "xml"},
             {"NEPTUN_PG_PREPARED", "maybe"},
             {"NEPTUN_PG_BATCH", ""},
             {"NEPTUN_ACCESS_LOG_SAMPLE", "2"},
             {"NEPTUN_ACCESS_LOG_SAMPLE", "-0.1"},
             {"NEPTUN_ACCESS_LOG_SAMPLE", "abc"},
             {"NEPTUN_ACCESS_LOG_SAMPLE", "nan"},
             {"NEPTUN_MAX_BODY_BYTES", "0"},
             {"NEPTUN_MAX_HEADER_BYTES", "10"},
             {"NEPTUN_HANDLER_TIMEOUT_MS", "0"},
             {"NEPTUN_RETRY_AFTER_S", "3601"},
             {"NEPTUN_SESSION_PREFIX", long_prefix},
         }) {
        BOOST_TEST_CONTEXT(var << "='" << value << "'") {
            auto r = parse_config({}, {{std::string(var), std::string(value)}});
            const auto* err = std::get_if<std::string>(&r);
            BOOST_TEST(err != nullptr, "accepted, expected an error");
            if (err) {
                BOOST_TEST(contains(*err, var), "error: " << *err);
                BOOST_TEST(!contains(*err, "\n"), "error: " << *err);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(bad_flag_values_name_the_flag_and_variable) {
    auto err = parse_error({"--threads", "0"}, {});
    BOOST_TEST(contains(err, "--threads"), "error: " << err);
    BOOST_TEST(contains(err, "NEPTUN_THREADS"), "error: " << err);
    auto joined = parse_error({"--redis-url=http://x"}, {});
    BOOST_TEST(contains(joined, "--redis-url"), "error: " << joined);
    BOOST_TEST(contains(joined, "NEPTUN_REDIS_URL"), "error: " << joined);
}

BOOST_AUTO_TEST_CASE(thread_count_limits) {
    BOOST_TEST(parse_ok({}, {{"NEPTUN_THREADS", "1"}}).threads == 1u);
    BOOST_TEST(parse_ok({}, {{"NEPTUN_THREADS", "256"}}).threads == 256u);
    auto err = parse_error({}, {{"NEPTUN_THREADS", "257"}});
    BOOST_TEST(contains(err, "NEPTUN_THREADS"));
}

BOOST_AUTO_TEST_CASE(access_log_sample_limits) {
    BOOST_TEST(parse_ok({}, {{"NEPTUN_ACCESS_LOG_SAMPLE", "0"}}).http.access_log_sample == 0.0);
    BOOST_TEST(parse_ok({}, {{"NEPTUN_ACCESS_LOG_SAMPLE", "1"}}).http.access_log_sample == 1.0);
}

BOOST_AUTO_TEST_CASE(unknown_flags_and_arguments_are_errors) {
    auto err = parse_error({"--nope"}, {});
    BOOST_TEST(contains(err, "--nope"), "error: " << err);
    auto joined = parse_error({"--nope=1"}, {});
    BOOST_TEST(contains(joined, "--nope"), "error: " << joined);
    BOOST_TEST(!parse_error({"frobnicate"}, {}).empty());
    BOOST_TEST(!parse_error({"serve", "migrate"}, {}).empty());
    BOOST_TEST(!parse_error({"-threads", "2"}, {}).empty());
    auto missing = parse_error({"--threads"}, {});
    BOOST_TEST(contains(missing, "--threads"), "error: " << missing);
}

BOOST_AUTO_TEST_CASE(endpoints) {
    auto v6 = parse_endpoint("[::1]:80");
    BOOST_TEST_REQUIRE(v6.has_value());
    BOOST_TEST(v6->host == "::1");
    BOOST_TEST(v6->port == 80u);
    auto any_port = parse_endpoint("127.0.0.1:0");
    BOOST_TEST_REQUIRE(any_port.has_value());
    BOOST_TEST(any_port->host == "127.0.0.1");
    BOOST_TEST(any_port->port == 0u);
    auto top = parse_endpoint("0.0.0.0:65535");
    BOOST_TEST_REQUIRE(top.has_value());
    BOOST_TEST(top->port == 65535u);
    auto v6_any = parse_endpoint("[::]:8080");
    BOOST_TEST_REQUIRE(v6_any.has_value());
    BOOST_TEST(v6_any->host == "::");
}

BOOST_AUTO_TEST_CASE(endpoints_refused) {
    for (std::string_view text :
         {"localhost:80", "1.2.3.4", "1.2.3.4:99999", "1.2.3.4:65536", "1.2.3.4:", ":80", "",
          "1.2.3.4:-1", "1.2.3.4:8a", "1.2.3.4: 80", "[::1]80", "[::1]", "[::1]:", "::1:80",
          "1.2.3:80", "example.com:443"}) {
        BOOST_TEST_CONTEXT("endpoint '" << text << "'") {
            BOOST_TEST(!parse_endpoint(text).has_value());
        }
    }
}

BOOST_AUTO_TEST_CASE(endpoints_need_a_real_ip_address) {
    // These look like dotted quads but are not addresses: the listener could not bind them,
    // so config must refuse them with the variable's name (CONTRACT §3), not fail later.
    for (std::string_view text :
         {"256.0.0.1:80", "1..2.3:80", "999.999.999.999:80", "[zz:zz]:80", "[:]:80"}) {
        BOOST_TEST_CONTEXT("endpoint '" << text << "'") {
            BOOST_TEST(!parse_endpoint(text).has_value());
        }
    }
    auto r = parse_config({}, {{"NEPTUN_LISTEN", "256.0.0.1:8080"}});
    const auto* err = std::get_if<std::string>(&r);
    BOOST_TEST(err != nullptr, "NEPTUN_LISTEN=256.0.0.1:8080 accepted, expected an error");
    if (err) BOOST_TEST(contains(*err, "NEPTUN_LISTEN"), "error: " << *err);
}

BOOST_AUTO_TEST_CASE(usage_lists_every_setting) {
    auto usage = neptun::app::usage_text();
    auto docs = neptun::app::settings_help();
    BOOST_TEST_REQUIRE(!docs.empty());
    for (const auto& d : docs) {
        BOOST_TEST_CONTEXT(d.env) {
            BOOST_TEST(d.env.starts_with("NEPTUN_"));
            BOOST_TEST(d.flag.starts_with("--"));
            BOOST_TEST(!d.help.empty());
            BOOST_TEST(!d.default_value.empty());
            BOOST_TEST(contains(usage, d.env));
            BOOST_TEST(contains(usage, d.flag));
        }
    }
    for (std::string_view var :
         {"NEPTUN_LISTEN", "NEPTUN_ADMIN_LISTEN", "NEPTUN_THREADS", "NEPTUN_REDIS_URL",
          "NEPTUN_DATABASE_URL", "NEPTUN_SESSION_PREFIX", "NEPTUN_LOG_LEVEL"}) {
        BOOST_TEST_CONTEXT(var) {
            BOOST_TEST(contains(usage, var));
            bool documented = false;
            for (const auto& d : docs) documented = documented || d.env == var;
            BOOST_TEST(documented);
        }
    }
    BOOST_TEST(contains(usage, "migrate"));
}

BOOST_AUTO_TEST_CASE(help_shows_the_contract_defaults) {
    std::map<std::string_view, std::string> defaults;
    for (const auto& d : neptun::app::settings_help()) defaults[d.env] = d.default_value;
    BOOST_TEST(defaults["NEPTUN_LISTEN"] == "0.0.0.0:8080");
    BOOST_TEST(defaults["NEPTUN_ADMIN_LISTEN"] == "0.0.0.0:9090");
    BOOST_TEST(defaults["NEPTUN_THREADS"] == "number of cores");
    BOOST_TEST(defaults["NEPTUN_REDIS_URL"] == "redis://127.0.0.1:6379/0");
    BOOST_TEST(defaults["NEPTUN_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/neptun");
    BOOST_TEST(defaults["NEPTUN_SESSION_PREFIX"] == "neptun:session:");
    BOOST_TEST(defaults["NEPTUN_LOG_LEVEL"] == "info");
    BOOST_TEST(defaults["NEPTUN_MAX_HEADER_BYTES"] == "8192");
    BOOST_TEST(defaults["NEPTUN_MAX_BODY_BYTES"] == "65536");
}

BOOST_AUTO_TEST_CASE(every_shown_default_is_accepted_back) {
    // What --help prints as a default must be a value the setting takes, as a variable and
    // as a flag (NEPTUN_THREADS and the TLS files show a phrase, not a value).
    for (const auto& d : neptun::app::settings_help()) {
        if (d.default_value.find(' ') != std::string::npos) continue;
        BOOST_TEST_CONTEXT(d.env << "='" << d.default_value << "'") {
            auto from_env = parse_config({}, {{std::string(d.env), d.default_value}});
            BOOST_TEST(std::holds_alternative<config>(from_env));
            auto from_flag = parse_config({std::string(d.flag), d.default_value}, {});
            BOOST_TEST(std::holds_alternative<config>(from_flag));
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(app_config_redis)

BOOST_AUTO_TEST_CASE(redis_url_and_tls_settings_are_checked_at_start) {
    auto refused = [](std::map<std::string, std::string> env) {
        auto r = parse_config({}, env);
        return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : std::string();
    };
    BOOST_TEST(refused({{"NEPTUN_REDIS_URL", "redis://h/0?tls=1"}}) ==
               "invalid NEPTUN_REDIS_URL (--redis-url): unknown query parameter 'tls' (known: db, "
               "password)");
    BOOST_TEST(refused({{"NEPTUN_REDIS_TLS_CA_FILE", "/nonexistent/ca.pem"}}) ==
               "invalid NEPTUN_REDIS_TLS_CA_FILE (--redis-tls-ca-file): cannot read the file");
    BOOST_TEST(
        refused({{"NEPTUN_REDIS_URL", "rediss://h"},
                 {"NEPTUN_REDIS_TLS_CERT_FILE", "/etc/hostname"}}) ==
        "invalid NEPTUN_REDIS_TLS_CERT_FILE/NEPTUN_REDIS_TLS_KEY_FILE: give both or neither");
    // A file that is not PEM: OpenSSL refuses it, at start, in one line.
    auto bad = refused(
        {{"NEPTUN_REDIS_URL", "rediss://h"}, {"NEPTUN_REDIS_TLS_CA_FILE", "/etc/hostname"}});
    BOOST_TEST(bad.starts_with("invalid NEPTUN_REDIS_TLS_* settings: cannot load the TLS files"));
    BOOST_TEST(bad.find('\n') == std::string::npos);
    BOOST_TEST(refused({{"NEPTUN_REDIS_URL", "REDISS://h:6380/1"}}).empty());
    BOOST_TEST(
        refused({{"NEPTUN_REDIS_URL", "redis+sentinel://127.0.0.1:26379/mymaster/0"}}).empty());
}

BOOST_AUTO_TEST_SUITE_END()
