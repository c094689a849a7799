#include "neptun/net/protocol.hpp"

#include <cmath>
#include <limits>

namespace neptun::net {
namespace {

// tchar (RFC 9110 §5.6.2)
bool is_tchar(unsigned char c) {
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool all_hex_not_zero(std::string_view s) {
    bool nonzero = false;
    for (char c : s) {
        if (!is_hex(c)) return false;
        nonzero = nonzero || c != '0';
    }
    return nonzero;
}

}  // namespace

request_start classify_start(std::string_view data) {
    request_start out;
    while (data.size() >= 2 && data[0] == '\r' && data[1] == '\n') {
        data.remove_prefix(2);
        out.empty_lines += 2;
    }
    for (std::size_t i = 0; i < data.size(); ++i) {
        auto c = static_cast<unsigned char>(data[i]);
        if (c == ' ') {
            out.refused = i == 0;
            out.method_seen = i > 0;
            return out;
        }
        if (c == '\r' && i == 0 && data.size() == 1) return out;  // a CRLF may be arriving
        if (!is_tchar(c)) {
            out.refused = true;
            return out;
        }
    }
    return out;
}

bool acceptable_chunk_extensions(std::string_view extensions) {
    // The size takes at most 16 hex digits; the rest of the line is the extensions.
    if (extensions.size() + 16 + 2 > max_chunk_line) return false;
    for (char c : extensions) {
        auto u = static_cast<unsigned char>(c);
        if ((u < 0x20 && u != '\t') || u == 0x7F) return false;
    }
    return true;
}

bool acceptable_request_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id)
        if (c < 0x21 || c > 0x7E) return false;
    return true;
}

std::optional<std::string_view> trace_id_of(std::string_view tp) {
    // version "-" trace-id "-" parent-id "-" flags
    if (tp.size() < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return std::nullopt;
    auto version = tp.substr(0, 2);
    if (!is_hex(version[0]) || !is_hex(version[1]) || version == "ff") return std::nullopt;
    if (version == "00" && tp.size() != 55) return std::nullopt;
    if (tp.size() > 55 && tp[55] != '-') return std::nullopt;
    auto trace = tp.substr(3, 32), parent = tp.substr(36, 16), flags = tp.substr(53, 2);
    if (!all_hex_not_zero(trace) || !all_hex_not_zero(parent) || !is_hex(flags[0]) ||
        !is_hex(flags[1]))
        return std::nullopt;
    return trace;
}

std::string format_http_date(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    auto n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(buf, n);
}

std::uint64_t access_log_every(double sample) {
    if (!(sample > 0)) return 0;
    double every = std::round(1.0 / sample);
    if (every < 1) return 1;
    if (every >= static_cast<double>(std::numeric_limits<std::uint64_t>::max()))
        return std::numeric_limits<std::uint64_t>::max();
    return static_cast<std::uint64_t>(every);
}

}  // namespace neptun::net
