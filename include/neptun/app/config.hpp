// Runtime configuration of neptun-api: every setting is an environment variable and the
// matching --flag. Used by main() and by the tests of start-up behaviour.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "neptun/net/limits.hpp"
#include "neptun/projects/options.hpp"

namespace neptun::app {

using std::chrono::milliseconds;

enum class command { serve, migrate, help, version };

enum class log_format { logfmt, json };

struct endpoint {
    std::string host;
    std::uint16_t port = 0;
};

struct config {
    command cmd = command::serve;

    endpoint listen{"0.0.0.0", 8080};
    endpoint admin_listen{"0.0.0.0", 9090};
    unsigned threads = 1;

    // A setting lands in the options of the layer it configures: adding one is a field
    // there and a row in src/app/config.cpp's table, nothing else.
    net::limits http;                   // the connection loop's limits and deadlines
    projects::service_options service;  // the Redis client, the PostgreSQL pool, the use case

    // Kept as given, for what serve() derives rather than copies: the Redis address is
    // parsed from the URL (service.redis.where is set from it too, for --help and checks),
    // and the session cache's sizes are the whole process's, split among the threads.
    std::string redis_url = "redis://127.0.0.1:6379/0";
    bool session_cache = true;
    std::size_t session_cache_entries = 100000;
    std::size_t session_cache_bytes = 64u << 20;
    milliseconds session_cache_max_age{60000};

    std::string log_level = "info";
    log_format log_fmt = log_format::logfmt;
    milliseconds shutdown_delay{0};
    milliseconds shutdown_timeout{10000};
    unsigned retry_after_s = 1;
};

// One setting as --help shows it.
struct setting_doc {
    std::string_view env;
    std::string_view flag;
    std::string default_value;
    std::string_view help;
};

std::vector<setting_doc> settings_help();

// The result of reading argv and the environment: a config, or one line saying which
// setting is wrong and why (main prints it and exits 2).
using parse_result = std::variant<config, std::string>;

parse_result parse_config(const std::vector<std::string>& args,
                          const std::map<std::string, std::string>& env);

std::string usage_text();

// Parses "host:port" ("[::1]:8080" for IPv6); port 0 means "any free port".
std::optional<endpoint> parse_endpoint(std::string_view text);

}  // namespace neptun::app
