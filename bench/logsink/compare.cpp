// bench/logsink/compare.cpp -- our asynchronous log sink (src/net/log.cpp) against Debian's
// spdlog 1.10 async logger, all writing the access line of every request from two "I/O
// threads" to stderr (a pipe drained by the script). What counts for a request is the time
// the I/O thread spends per line; what counts for the machine is the CPU of all threads per
// line actually written. Built and run by bench/logsink/run.sh; prints one JSON object per
// measured round.
//
// The contenders, each with a queue of about 4 MiB of lines and one writer thread:
//   ours          log::start_async() (4 MiB, drops new lines when full)
//   spdlog        async_logger + stderr_sink_mt (fwrite and fflush per line)
//   spdlog_file   async_logger + basic_file_sink_mt on /dev/stderr (a buffered FILE,
//                 flushed when asked): spdlog's cheapest way to a pipe
// both spdlog ones with overrun_oldest (1.10 has no policy that drops the new line).
#include <sys/resource.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "neptun/net/log.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct round_result {
    double producer_ns = 0;  // per line offered, on the calling ("I/O") threads
    double cpu_ns = 0;       // every thread of the process (the writer's too), per line written
    std::uint64_t dropped = 0;
};

void sleep_until(const timespec& t) {
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr) != 0) {
    }
}

// Runs `line(thread, i)` `lines` times on each of `threads` threads; `flush` waits for the
// writer to have written everything; `dropped` says how many lines were not written. With
// `spacing` > 0 each thread starts a line every `spacing` (a server's pace: one access line
// per request), sleeping in between, and only the time inside the calls counts as the
// producers'; with 0 they log back to back (a burst).
template <typename Line, typename Flush, typename Dropped>
round_result measure(int threads, int lines, long long spacing_ns, Line line, Flush flush,
                     Dropped dropped) {
    std::atomic<long long> producer_ns{0};
    const auto dropped_before = dropped();
    const auto cpu0 = cpu_seconds();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            long long inside = 0;
            timespec next{};
            clock_gettime(CLOCK_MONOTONIC, &next);
            for (int i = 0; i < lines; ++i) {
                if (spacing_ns > 0) {
                    next.tv_nsec += spacing_ns;
                    while (next.tv_nsec >= 1000000000) {
                        next.tv_nsec -= 1000000000;
                        ++next.tv_sec;
                    }
                    sleep_until(next);
                }
                auto before = clock_type::now();
                line(t, i);
                inside +=
                    std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - before)
                        .count();
            }
            producer_ns += inside;
        });
    for (auto& t : ts) t.join();
    flush();
    const auto cpu = cpu_seconds() - cpu0;
    const double offered = static_cast<double>(threads) * lines;
    round_result r;
    r.dropped = dropped() - dropped_before;
    r.producer_ns = static_cast<double>(producer_ns.load()) / offered;
    const double written = offered - static_cast<double>(r.dropped);
    r.cpu_ns = written > 0 ? cpu * 1e9 / written : 0;
    return r;
}

// The same fields as the server's access line (src/net/server.cpp access_log).
constexpr const char* ids[] = {"3f9a1c2e7b5d4a60-1a2b", "3f9a1c2e7b5d4a60-1a2c"};
constexpr std::size_t queue_bytes = 4u << 20;  // ours: log::start_async()'s default
constexpr std::size_t line_bytes = 150;        // the access line below, about

std::string json(const char* name, const round_result& r) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "\"%s\":{\"producer_ns\":%.1f,\"cpu_ns\":%.1f,\"dropped\":%llu}",
                  name, r.producer_ns, r.cpu_ns, static_cast<unsigned long long>(r.dropped));
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    const int lines = argc > 1 ? std::atoi(argv[1]) : 200000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    const long long spacing = argc > 3 ? std::atoll(argv[3]) : 0;
    const int threads = 2;
    namespace log = neptun::net::log;

    spdlog::init_thread_pool(queue_bytes / line_bytes, 1);
    auto make = [](const char* name, spdlog::sink_ptr sink) {
        auto l =
            std::make_shared<spdlog::async_logger>(name, std::move(sink), spdlog::thread_pool(),
                                                   spdlog::async_overflow_policy::overrun_oldest);
        l->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);
        return l;
    };
    auto spd = make("stderr", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto spd_file =
        make("file", std::make_shared<spdlog::sinks::basic_file_sink_mt>("/dev/stderr"));

    auto ours = [&] {
        log::start_async(queue_bytes);
        return measure(
            threads, lines, spacing,
            [](int t, int i) {
                log::write(log::level::info, "access",
                           {{"method", "PATCH"},
                            {"path", "/api/users/4711/projects/815"},
                            {"status", 200},
                            {"duration_us", 130 + (i & 63)},
                            {"request_id", ids[t]}});
            },
            [] { log::stop_async(); }, [] { return log::dropped_lines(); });
    };
    auto theirs = [&](std::shared_ptr<spdlog::async_logger>& l) {
        return measure(
            threads, lines, spacing,
            [&](int t, int i) {
                l->info("event=access method={} path={} status={} duration_us={} request_id={}",
                        "PATCH", "/api/users/4711/projects/815", 200, 130 + (i & 63), ids[t]);
            },
            [&] {
                // A flush is queued behind the lines; with one pool thread, an empty queue
                // means every line before it was handed to the sink.
                l->flush();
                while (spdlog::thread_pool()->queue_size() > 0)
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
            },
            [] { return spdlog::thread_pool()->overrun_counter(); });
    };

    for (int r = 0; r < rounds; ++r) {
        // Each contender goes first in turn.
        round_result a, b, c;
        switch (r % 3) {
            case 0:
                a = ours(), b = theirs(spd), c = theirs(spd_file);
                break;
            case 1:
                b = theirs(spd), c = theirs(spd_file), a = ours();
                break;
            default:
                c = theirs(spd_file), a = ours(), b = theirs(spd);
                break;
        }
        std::printf("{\"round\":%d,\"lines\":%d,\"spacing_ns\":%lld,%s,%s,%s}\n", r,
                    threads * lines, spacing, json("ours", a).c_str(), json("spdlog", b).c_str(),
                    json("spdlog_file", c).c_str());
        std::fflush(stdout);
    }
    spdlog::shutdown();
}
