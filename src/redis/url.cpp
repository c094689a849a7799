#include "neptun/redis/url.hpp"

#include <charconv>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace neptun::redis {
namespace {

bool parse_uint(std::string_view s, unsigned max, unsigned& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

}  // namespace

std::optional<address> parse_url(std::string_view url, std::string& why) {
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed) {
        why = "not a URL (expected redis://host:port/db or unix:///path)";
        return std::nullopt;
    }
    const auto& u = *parsed;
    address a;
    if (u.has_query()) {
        for (auto param : u.params()) {
            if (param.key == "db") {
                if (!parse_uint(param.value, 1u << 20, a.db)) {
                    why = "db must be a non-negative integer";
                    return std::nullopt;
                }
            } else if (param.key == "password") {
                a.password = param.value;
            }
        }
    }
    if (u.scheme() == "unix") {
        a.unix_path = u.path();
        if (a.unix_path.empty() || a.unix_path.front() != '/') {
            why = "unix URL needs an absolute path (unix:///run/redis.sock)";
            return std::nullopt;
        }
        return a;
    }
    if (u.scheme() != "redis") {
        why = "scheme must be redis:// or unix:// (TLS is the proxy's job)";
        return std::nullopt;
    }
    a.host = u.host_address();
    if (u.host_type() == boost::urls::host_type::ipv6) a.host = u.host_address();
    if (a.host.empty()) {
        why = "missing host";
        return std::nullopt;
    }
    if (u.has_port()) {
        unsigned port = 0;
        if (!parse_uint(u.port(), 65535, port) || port == 0) {
            why = "port must be 1..65535";
            return std::nullopt;
        }
        a.port = static_cast<std::uint16_t>(port);
    }
    if (u.has_userinfo()) {
        a.username = u.user();
        if (u.has_password())
            a.password = u.password();
        else {
            // redis://secret@host: a lone userinfo is the password, as redis-cli reads it.
            a.password = a.username;
            a.username.clear();
        }
    }
    std::string path = u.path();
    if (!path.empty() && path != "/") {
        if (!parse_uint(std::string_view(path).substr(1), 1u << 20, a.db)) {
            why = "the path must be a db index (redis://host:6379/0)";
            return std::nullopt;
        }
    }
    return a;
}

}  // namespace neptun::redis
