// The decisions of opening a connection, apart from its I/O: which hosts need a lookup, the
// host/hostaddr/port lists handed to libpq, and the back-off between attempts. Pure logic
// (libpq only parses the conninfo), unit-tested without a server; the pool's I/O driver
// resolves with Asio and polls libpq.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace neptun::pg {

// libpq resolves host names with a blocking getaddrinfo(); the pool resolves every host of
// the (possibly multi-host) conninfo with Asio instead and hands libpq the addresses as a
// hostaddr list. `host` stays as given, one entry per address, so that TLS verify-full
// still checks the server's name; IP literals and socket directories need no lookup.
struct connect_target {
    std::vector<std::string> hosts, ports;  // one port per host ("" = libpq's default)
    bool pass_through = false;              // hostaddr given, or no host: libpq does no lookup
};
connect_target parse_connect_target(const std::string& conninfo);

// How a host is reached: a socket directory or empty (libpq's default), an IP literal, or a
// name to resolve.
enum class host_kind { local, literal, name };
host_kind classify_host(const std::string& host);

// The comma lists given to libpq as host, hostaddr and port, one entry per address.
struct host_lists {
    std::string host, hostaddr, port;
    unsigned entries = 0;
    void add(const std::string& h, const std::string& addr, const std::string& p);
    void clear() { *this = {}; }
};

// The longest wait before connection attempt `attempt` (0: the first retry): backoff_min
// doubled per failed attempt, capped at backoff_max. The pool waits a random time between
// half of it and all of it, so that connections do not retry in step.
std::chrono::milliseconds backoff_ceiling(unsigned attempt, std::chrono::milliseconds min,
                                          std::chrono::milliseconds max);

}  // namespace neptun::pg
