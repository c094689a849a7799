// The pure rules of the HTTP/1.1 edge (CONTRACT.md §1.3) that Beast 1.81 does not apply
// itself: what may begin a request, chunk extensions, request ids and trace context, the
// Date header, the access-log sampling interval. No I/O: the connection loop calls them and
// the unit tests and fuzzers drive them directly.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace neptun::net {

// How the bytes received so far for a new request begin.
struct request_start {
    std::size_t empty_lines = 0;  // bytes of CRLFs before the request line (RFC 9112 §2.2)
    bool refused = false;         // cannot begin a request line (TLS, binary noise)
    bool method_seen = false;     // the method and its space are there: nothing more to judge
};
// Looks at the beginning of `data`: leading CRLFs are skipped, and the method must be a
// token (RFC 9110 §5.6.2) up to its first space. Judged on as many bytes as there are, so a
// TLS ClientHello is refused on its first byte.
request_start classify_start(std::string_view data);

inline constexpr std::size_t max_chunk_line = 4096;

// A chunk line's extensions as Beast hands them over (after the size): no control
// character but HTAB (a quoted-string cannot hold one either), and the whole line within
// max_chunk_line.
bool acceptable_chunk_extensions(std::string_view extensions);

inline constexpr std::string_view request_id_field = "X-Request-Id";

// A client's X-Request-Id is echoed if it is 1–128 visible ASCII characters.
bool acceptable_request_id(std::string_view id);

// The trace id of a W3C traceparent (version 00 form: 00-<32 hex>-<16 hex>-<2 hex>, ids
// not all zeros; a later version may add fields after a dash), or nothing.
std::optional<std::string_view> trace_id_of(std::string_view traceparent);

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7 IMF-fixdate).
std::string format_http_date(std::time_t t);

// One access line every N requests for a sample fraction (0 → none, N = 0).
std::uint64_t access_log_every(double sample);

}  // namespace neptun::net
