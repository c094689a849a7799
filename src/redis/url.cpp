#include "neptun/redis/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/url/decode_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace neptun::redis {
namespace {

bool parse_uint(std::string_view s, unsigned max, unsigned& out) {
    if (s.empty()) return false;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

bool parse_port(std::string_view s, std::uint16_t& out) {
    unsigned port = 0;
    if (!parse_uint(s, 65535, port) || port == 0) return false;
    out = static_cast<std::uint16_t>(port);
    return true;
}

std::string decoded(std::string_view s) {
    auto d = boost::urls::make_pct_string_view(s);
    if (!d) return std::string(s);
    std::string out;
    for (char c : d->decode()) out.push_back(c);
    return out;
}

// Query parameters: db and password everywhere, sentinel_password for the sentinel form.
bool apply_query(const boost::urls::url_view& u, bool sentinel, address& a, std::string& why) {
    if (!u.has_query()) return true;
    for (auto param : u.params()) {
        if (param.key == "db") {
            if (!parse_uint(param.value, 1u << 20, a.db)) {
                why = "db must be a non-negative integer";
                return false;
            }
        } else if (param.key == "password") {
            a.password = param.value;
            a.auth = true;
        } else if (sentinel && param.key == "sentinel_password") {
            a.sentinel_password = param.value;
        } else {
            why = "unknown query parameter '" + std::string(param.key).substr(0, 40) +
                  "' (known: db, password" + (sentinel ? ", sentinel_password)" : ")");
            return false;
        }
    }
    return true;
}

// redis+sentinel://[userinfo@]h1[:p1],h2[:p2]/master[/db][?query]: Boost.URL cannot parse a
// list of hosts, so the authority is split here and the rest handed to it.
std::optional<address> parse_sentinel(std::string_view url, std::string& why) {
    constexpr std::string_view scheme_end = "://";
    auto rest = url.substr(url.find(scheme_end) + scheme_end.size());
    auto slash = rest.find('/');
    auto authority = rest.substr(0, slash);
    std::string_view tail = slash == std::string_view::npos ? "" : rest.substr(slash);
    address a;
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
        auto userinfo = authority.substr(0, at);
        authority = authority.substr(at + 1);
        auto colon = userinfo.find(':');
        if (colon == std::string_view::npos) {
            a.password = decoded(userinfo);
        } else {
            a.username = decoded(userinfo.substr(0, colon));
            a.password = decoded(userinfo.substr(colon + 1));
        }
        a.auth = true;
    }
    for (bool more = !authority.empty(); more;) {
        auto comma = authority.find(',');
        auto item = authority.substr(0, comma);
        more = comma != std::string_view::npos;
        if (more) authority = authority.substr(comma + 1);
        host_port hp{"", 26379};
        std::string_view port;
        if (!item.empty() && item.front() == '[') {
            auto close = item.find(']');
            if (close == std::string_view::npos) {
                why = "a sentinel's IPv6 address needs its closing ]";
                return std::nullopt;
            }
            hp.host = item.substr(1, close - 1);
            if (close + 1 < item.size()) {
                if (item[close + 1] != ':') {
                    why = "a sentinel must be host[:port]";
                    return std::nullopt;
                }
                port = item.substr(close + 2);
            }
        } else {
            auto colon = item.find(':');
            hp.host = item.substr(0, colon);
            if (colon != std::string_view::npos) port = item.substr(colon + 1);
        }
        if (hp.host.empty()) {
            why = "a sentinel's host is missing";
            return std::nullopt;
        }
        if (!port.empty() || item.ends_with(':')) {
            if (!parse_port(port, hp.port)) {
                why = "a sentinel's port must be 1..65535";
                return std::nullopt;
            }
        }
        a.sentinels.push_back(std::move(hp));
    }
    if (a.sentinels.empty()) {
        why = "no sentinel given (redis+sentinel://host:26379,host2:26379/mymaster/0)";
        return std::nullopt;
    }
    // The path and query, parsed as a relative reference.
    auto ref = boost::urls::parse_relative_ref(tail.empty() ? std::string_view("/") : tail);
    if (!ref) {
        why = "the path must be /master[/db]";
        return std::nullopt;
    }
    std::string path = ref->path();
    std::string_view p = path;
    if (p.starts_with("/")) p.remove_prefix(1);
    auto next = p.find('/');
    a.master_name = p.substr(0, next);
    if (a.master_name.empty()) {
        why = "the master's name is missing (redis+sentinel://host:26379/mymaster/0)";
        return std::nullopt;
    }
    if (next != std::string_view::npos) {
        auto db = p.substr(next + 1);
        if (!db.empty() && !parse_uint(db, 1u << 20, a.db)) {
            why = "the path must be /master[/db] with a db index";
            return std::nullopt;
        }
    }
    if (!apply_query(*ref, true, a, why)) return std::nullopt;
    return a;
}

}  // namespace

std::optional<address> parse_url(std::string_view url, std::string& why) {
    auto colon = url.find("://");
    auto scheme = lower(url.substr(0, colon == std::string_view::npos ? 0 : colon));
    if (scheme == "redis+sentinel") return parse_sentinel(url, why);
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed) {
        why =
            "not a URL (expected redis://host:port/db, rediss://, unix:///path or "
            "redis+sentinel://)";
        return std::nullopt;
    }
    const auto& u = *parsed;
    address a;
    if (!apply_query(u, false, a, why)) return std::nullopt;
    scheme = lower(u.scheme());
    if (scheme == "unix") {
        a.unix_path = u.path();
        if (a.unix_path.empty() || a.unix_path.front() != '/') {
            why = "unix URL needs an absolute path (unix:///run/redis.sock)";
            return std::nullopt;
        }
        return a;
    }
    if (scheme == "rediss")
        a.tls = true;
    else if (scheme != "redis") {
        why = "scheme must be redis://, rediss://, unix:// or redis+sentinel://";
        return std::nullopt;
    }
    a.host = u.host_address();
    if (a.host.empty()) {
        why = "missing host";
        return std::nullopt;
    }
    if (u.has_port()) {
        if (!parse_port(u.port(), a.port)) {
            why = "port must be 1..65535";
            return std::nullopt;
        }
    }
    if (u.has_userinfo()) {
        a.username = u.user();
        a.auth = true;
        if (u.has_password())
            a.password = u.password();  // may be empty: redis://user:@host is AUTH user ""
        else {
            // redis://secret@host: a lone userinfo is the password, as redis-cli reads it.
            a.password = a.username;
            a.username.clear();
        }
        if (a.username.empty() && a.password.empty()) a.auth = false;  // redis://:@host
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
