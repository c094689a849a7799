// Structured logging for every layer: one line per event on stderr, logfmt or JSON.
// Callers pass fields, never raw headers, so a session token has no way into a line.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace neptun::net::log {

enum class level { debug = 0, info = 1, warn = 2, error = 3 };
enum class format { logfmt, json };

bool parse_level(std::string_view text, level& out);

void configure(level min_level, format fmt);
bool enabled(level l);

struct field {
    using value_type = std::variant<std::string_view, std::int64_t, double, bool>;
    std::string_view key;
    value_type value;

    field(std::string_view k, std::string_view v) : key(k), value(v) {}
    field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
    field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
    field(std::string_view k, bool v) : key(k), value(v) {}
    field(std::string_view k, double v) : key(k), value(v) {}
    template <typename Int>
    requires std::is_integral_v<Int> field(std::string_view k, Int v)
        : key(k), value(static_cast<std::int64_t>(v)) {}
};

// Formats one line without writing it (used by write() and by the tests).
std::string format_line(level l, std::string_view event, std::initializer_list<field> fields,
                        format fmt);

void write(level l, std::string_view event, std::initializer_list<field> fields = {});

// From start_async() on, write() only queues the line (at most `max_queued_bytes`; past
// that, lines are dropped and counted) and one writer thread writes the queue to stderr, so
// no I/O thread ever blocks on the log. stop_async() writes what is queued and returns.
// Before start_async() (and after stop_async()) every line is written at once.
void start_async(std::size_t max_queued_bytes = 4u << 20);
void stop_async();
std::uint64_t dropped_lines();

inline void debug(std::string_view e, std::initializer_list<field> f = {}) {
    if (enabled(level::debug)) write(level::debug, e, f);
}
inline void info(std::string_view e, std::initializer_list<field> f = {}) {
    if (enabled(level::info)) write(level::info, e, f);
}
inline void warn(std::string_view e, std::initializer_list<field> f = {}) {
    if (enabled(level::warn)) write(level::warn, e, f);
}
inline void error(std::string_view e, std::initializer_list<field> f = {}) {
    write(level::error, e, f);
}

}  // namespace neptun::net::log
