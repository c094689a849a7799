// NEPTUN_REDIS_URL: redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N].
// Used by the Redis client at start and by config validation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace neptun::redis {

struct address {
    std::string host;  // empty for a unix socket
    std::uint16_t port = 6379;
    std::string unix_path;  // set for unix:///path
    std::string username;   // AUTH username (Redis 6 ACL), may be empty
    std::string password;   // AUTH password, may be empty
    unsigned db = 0;
};

// Parses the URL; on failure returns nullopt and says why in `why`.
std::optional<address> parse_url(std::string_view url, std::string& why);

}  // namespace neptun::redis
