// Structured log lines: logfmt quoting and JSON escaping, so that no value can break a line
// or forge a field.
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <thread>

#include "neptun/net/log.hpp"

namespace {

namespace log = neptun::net::log;

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

// "2025-02-16T17:42:11.123Z": UTC, milliseconds, Z.
bool is_iso_timestamp(std::string_view ts) {
    if (ts.size() != 24) return false;
    for (std::size_t i = 0; i < ts.size(); ++i) {
        char c = ts[i];
        switch (i) {
            case 4:
            case 7:
                if (c != '-') return false;
                break;
            case 10:
                if (c != 'T') return false;
                break;
            case 13:
            case 16:
                if (c != ':') return false;
                break;
            case 19:
                if (c != '.') return false;
                break;
            case 23:
                if (c != 'Z') return false;
                break;
            default:
                if (c < '0' || c > '9') return false;
        }
    }
    return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(net_log)

BOOST_AUTO_TEST_CASE(logfmt_line_has_timestamp_level_event_and_fields) {
    auto line = log::format_line(log::level::info, "x", {{"key", "value"}}, log::format::logfmt);
    BOOST_TEST_INFO("line: " << line);
    BOOST_TEST_REQUIRE(line.starts_with("ts="));
    BOOST_TEST(is_iso_timestamp(std::string_view(line).substr(3, 24)));
    BOOST_TEST(line.substr(27) == " level=info event=x key=value\n");
}

BOOST_AUTO_TEST_CASE(logfmt_names_every_level) {
    BOOST_TEST(contains(log::format_line(log::level::debug, "e", {}, log::format::logfmt),
                        " level=debug event=e\n"));
    BOOST_TEST(contains(log::format_line(log::level::warn, "e", {}, log::format::logfmt),
                        " level=warn event=e\n"));
    BOOST_TEST(contains(log::format_line(log::level::error, "e", {}, log::format::logfmt),
                        " level=error event=e\n"));
}

BOOST_AUTO_TEST_CASE(logfmt_quotes_values_that_need_it) {
    auto line = log::format_line(log::level::warn, "redis_error",
                                 {{"spaced", "two words"},
                                  {"quoted", "say \"hi\""},
                                  {"empty", ""},
                                  {"eq", "a=b"},
                                  {"newline", "a\nb"},
                                  {"backslash", "a\\b"},
                                  {"plain", "abc-123_/:."}},
                                 log::format::logfmt);
    BOOST_TEST_INFO("line: " << line);
    BOOST_TEST(contains(line, " spaced=\"two words\""));
    BOOST_TEST(contains(line, " quoted=\"say \\\"hi\\\"\""));
    BOOST_TEST(contains(line, " empty=\"\""));
    BOOST_TEST(contains(line, " eq=\"a=b\""));
    BOOST_TEST(contains(line, " newline=\"a\\nb\""));
    BOOST_TEST(contains(line, " backslash=\"a\\\\b\""));
    BOOST_TEST(contains(line, " plain=abc-123_/:.\n"));
    // A value never ends the line early: one newline, at the end.
    BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1);
    BOOST_TEST(line.back() == '\n');
}

BOOST_AUTO_TEST_CASE(logfmt_quotes_an_event_with_spaces) {
    auto line = log::format_line(log::level::info, "two words", {}, log::format::logfmt);
    BOOST_TEST(contains(line, " event=\"two words\"\n"));
}

BOOST_AUTO_TEST_CASE(logfmt_writes_numbers_and_booleans_bare) {
    auto line = log::format_line(log::level::info, "access",
                                 {{"status", 404},
                                  {"neg", -7},
                                  {"ok", true},
                                  {"off", false},
                                  {"seconds", 0.5},
                                  {"big", std::int64_t{9007199254740993}}},
                                 log::format::logfmt);
    BOOST_TEST_INFO("line: " << line);
    BOOST_TEST(
        contains(line, " status=404 neg=-7 ok=true off=false seconds=0.5 big=9007199254740993\n"));
}

BOOST_AUTO_TEST_CASE(json_line_is_one_object_with_every_field) {
    auto line = log::format_line(
        log::level::warn, "x",
        {{"key", "value"}, {"n", 42}, {"ok", true}, {"q", "say \"hi\"\n"}, {"ratio", 0.25}},
        log::format::json);
    BOOST_TEST_INFO("line: " << line);
    BOOST_TEST_REQUIRE(line.starts_with("{\"ts\":\""));
    BOOST_TEST(is_iso_timestamp(std::string_view(line).substr(7, 24)));
    BOOST_TEST(line.substr(31) ==
               "\",\"level\":\"warn\",\"event\":\"x\",\"key\":\"value\",\"n\":42,\"ok\":true,"
               "\"q\":\"say \\\"hi\\\"\\n\",\"ratio\":0.25}\n");
    BOOST_TEST(std::count(line.begin(), line.end(), '\n') == 1);
}

BOOST_AUTO_TEST_CASE(json_escapes_event_and_control_characters) {
    auto line =
        log::format_line(log::level::error, "a\"b", {{"ctl", "\x01\t\\"}}, log::format::json);
    BOOST_TEST_INFO("line: " << line);
    BOOST_TEST(
        contains(line, "\"level\":\"error\",\"event\":\"a\\\"b\",\"ctl\":\"\\u0001\\t\\\\\"}\n"));
}

BOOST_AUTO_TEST_CASE(parse_level_takes_the_four_names) {
    log::level l = log::level::error;
    BOOST_TEST(log::parse_level("debug", l));
    BOOST_TEST((l == log::level::debug));
    BOOST_TEST(log::parse_level("info", l));
    BOOST_TEST((l == log::level::info));
    BOOST_TEST(log::parse_level("warn", l));
    BOOST_TEST((l == log::level::warn));
    BOOST_TEST(log::parse_level("error", l));
    BOOST_TEST((l == log::level::error));
    BOOST_TEST(!log::parse_level("loud", l));
    BOOST_TEST(!log::parse_level("", l));
    BOOST_TEST(!log::parse_level("info ", l));
    BOOST_TEST((l == log::level::error));  // untouched on failure
}

BOOST_AUTO_TEST_CASE(configure_sets_the_minimum_level) {
    log::configure(log::level::warn, log::format::logfmt);
    BOOST_TEST(!log::enabled(log::level::debug));
    BOOST_TEST(!log::enabled(log::level::info));
    BOOST_TEST(log::enabled(log::level::warn));
    BOOST_TEST(log::enabled(log::level::error));
    log::configure(log::level::debug, log::format::logfmt);
    BOOST_TEST(log::enabled(log::level::debug));
    log::configure(log::level::info, log::format::logfmt);  // the process default
    BOOST_TEST(!log::enabled(log::level::debug));
    BOOST_TEST(log::enabled(log::level::info));
}

BOOST_AUTO_TEST_CASE(the_async_sink_never_blocks_and_counts_what_it_drops) {
    // stderr becomes a pipe nobody reads yet: the writer thread blocks on it, the queue
    // fills up, and write() must still return at once, dropping and counting.
    int pipefd[2];
    BOOST_REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
    int saved = ::dup(STDERR_FILENO);
    ::dup2(pipefd[1], STDERR_FILENO);
    auto dropped_before = log::dropped_lines();
    log::start_async(4096);
    constexpr int lines = 5000;  // ~80 bytes each: far more than the pipe and the queue hold
    for (int i = 0; i < lines; ++i) log::write(log::level::info, "queued", {{"n", i}});
    auto dropped = log::dropped_lines() - dropped_before;
    // Let the writer finish: read the pipe on another thread while stop_async() flushes.
    std::string got;
    std::thread reader([&] {
        char buf[65536];
        ssize_t n;
        while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0)
            got.append(buf, static_cast<std::size_t>(n));
    });
    log::stop_async();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    ::close(pipefd[1]);
    reader.join();
    ::close(pipefd[0]);
    auto written = static_cast<std::uint64_t>(std::count(got.begin(), got.end(), '\n'));
    BOOST_TEST(dropped > 0u);
    BOOST_TEST(written + dropped == static_cast<std::uint64_t>(lines));  // nothing else lost
    BOOST_TEST(got.find("event=queued n=0\n") != std::string::npos);     // the oldest kept
}

BOOST_AUTO_TEST_SUITE_END()
