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

    std::string redis_url = "redis://127.0.0.1:6379/0";
    std::string database_url = "postgresql://postgres@127.0.0.1:5432/neptun";
    std::string session_prefix = "neptun:session:";
    bool require_if_match = false;

    std::string log_level = "info";
    log_format log_fmt = log_format::logfmt;
    double access_log_sample = 1.0;

    std::size_t max_connections = 10000;
    std::size_t max_header_bytes = 8192;
    std::size_t max_header_fields = 100;
    std::size_t max_body_bytes = 65536;

    milliseconds header_timeout{10000};
    milliseconds body_timeout{10000};
    milliseconds handler_timeout{5000};
    milliseconds write_timeout{10000};
    milliseconds idle_timeout{30000};
    milliseconds shutdown_delay{0};
    milliseconds shutdown_timeout{10000};
    unsigned retry_after_s = 1;

    milliseconds redis_connect_timeout{2000};
    milliseconds redis_timeout{1000};
    milliseconds redis_health_timeout{2000};
    std::string redis_tls_ca_file;
    std::string redis_tls_cert_file;
    std::string redis_tls_key_file;
    std::string redis_tls_server_name;

    bool session_cache = true;
    std::size_t session_cache_entries = 100000;  // the whole process, split among threads
    std::size_t session_cache_bytes = 64u << 20;
    milliseconds session_cache_max_age{60000};

    unsigned pg_pool_size = 4;
    unsigned pg_pipeline_depth = 32;
    milliseconds pg_pool_wait{1000};
    milliseconds pg_statement_timeout{4000};  // 4/5 of handler_timeout unless set
    milliseconds pg_connect_timeout{3000};
    bool pg_prepared = true;
    bool pg_batch = true;
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
