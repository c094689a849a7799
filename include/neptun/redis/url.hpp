// NEPTUN_REDIS_URL: where the sessions live. Used by the Redis client at start and by config
// validation (a URL it refuses stops the server with exit 2).
//   redis://[[user]:password@]host[:port][/db]       plain TCP
//   rediss://[[user]:password@]host[:port][/db]      TLS (certificate and host name verified)
//   unix:///path[?db=N&password=...]                 a unix socket
//   redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/master[/db]
//                                                    Sentinel: the master's name and the
//                                                    sentinels to ask (port 26379 by default)
// The scheme is case-insensitive. Query parameters: `db`, `password` (and
// `sentinel_password` for the sentinel form); any other is refused.
// `redis://secret@host` is the password `secret` (as redis-cli reads it);
// `redis://user:@host` is the ACL user `user` with an empty password (AUTH user "").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace neptun::redis {

struct host_port {
    std::string host;
    std::uint16_t port = 0;
};

struct address {
    std::string host;  // empty for a unix socket and for the sentinel form
    std::uint16_t port = 6379;
    std::string unix_path;  // set for unix:///path
    bool tls = false;       // rediss://
    std::string username;   // AUTH username (Redis 6 ACL), may be empty
    std::string password;   // AUTH password, may be empty
    bool auth = false;      // send AUTH (a password, or a user name, was given)
    unsigned db = 0;
    // redis+sentinel://: the sentinels, asked in turn, and the master's name.
    std::vector<host_port> sentinels;
    std::string master_name;
    std::string sentinel_password;  // AUTH for the sentinels, may be empty
};

// Parses the URL; on failure returns nullopt and says why in `why` (never quoting a password).
std::optional<address> parse_url(std::string_view url, std::string& why);

}  // namespace neptun::redis
