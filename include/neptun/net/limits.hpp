// The limits and deadlines of the connection loop, as the configuration sets them (one
// field here and one row in src/app/config.cpp's table per setting), and what they bound a
// connection's memory to.
#pragma once

#include <chrono>
#include <cstddef>

namespace neptun::net {

struct limits {
    std::size_t max_header_bytes = 8192;
    std::size_t max_header_fields = 100;  // lines after the request line (431 past it)
    std::size_t max_body_bytes = 65536;
    std::size_t max_connections = 10000;
    std::chrono::milliseconds header_timeout{10000};
    std::chrono::milliseconds body_timeout{10000};
    std::chrono::milliseconds handler_timeout{5000};
    std::chrono::milliseconds write_timeout{10000};
    std::chrono::milliseconds idle_timeout{30000};
    double access_log_sample = 1.0;
    std::size_t max_admin_connections = 64;
};

// What one connection may hold at most, from `limits` (docs/operations.md explains it).
struct memory_bound {
    std::size_t active;  // while a request is read, handled and answered
    std::size_t idle;    // between requests on a keep-alive connection
};
memory_bound connection_memory_bound(const limits& lim);

}  // namespace neptun::net
