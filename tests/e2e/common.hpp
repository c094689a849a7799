// Shared by the end-to-end tests: the environment that points a server at the test stores.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include <boost/test/unit_test.hpp>

#include "support/http_client.hpp"
#include "support/process.hpp"
#include "support/stores.hpp"

namespace neptun::test {

inline env_map base_env(env_map extra = {}) {
    env_map env{{"NEPTUN_REDIS_URL", stores::redis_url()},
                {"NEPTUN_DATABASE_URL", stores::database_url()}};
    for (auto& [k, v] : extra) env[k] = v;
    return env;
}

// The value of one sample (a name, with its labels if it has any) in a /metrics text, or
// "" when absent.
inline std::string metric_in(const std::string& text, const std::string& name) {
    auto pos = text.find("\n" + name + " ");
    if (pos == std::string::npos) return {};
    auto start = pos + name.size() + 2;
    return text.substr(start, text.find('\n', start) - start);
}

// The same, read from the admin port's /metrics now.
inline std::string metric(std::uint16_t admin_port, const std::string& name) {
    auto r = http_request(admin_port, "GET", "/metrics");
    if (!r) return {};
    return metric_in(r->body, name);
}

inline header_list auth(const seeded_user& u, header_list more = {}) {
    header_list h{{"Cookie", u.cookie()}};
    h.insert(h.end(), more.begin(), more.end());
    return h;
}

inline header_list json_auth(const seeded_user& u) {
    return auth(u, {{"Content-Type", "application/json"}});
}

// The head of a raw PATCH of `u`'s project, for tests that send exact bytes: the request
// line, Host, Cookie and Content-Type, then `extra` (whole header lines, each ending in
// CRLF). The caller adds the framing fields and the blank line.
inline std::string raw_patch(const seeded_user& u, const std::string& extra = {}) {
    return "PATCH " + u.path() + " HTTP/1.1\r\nHost: x\r\nCookie: " + u.cookie() +
           "\r\nContent-Type: application/json\r\n" + extra;
}

// One chunk of a chunked body: its size in hex, the data, CRLF.
inline std::string chunk(std::string_view data) {
    char size[20];
    std::snprintf(size, sizeof size, "%zx", data.size());
    return std::string(size) + "\r\n" + std::string(data) + "\r\n";
}
inline constexpr std::string_view last_chunk = "0\r\n\r\n";

}  // namespace neptun::test
