// bench/logsink/compare.cpp -- our asynchronous log sink (src/net/log.cpp) against Debian's
// spdlog 1.10 async logger, both writing the access line of every request from two
// "I/O threads" to stderr (a pipe drained by the script). What counts for a request is the
// time the I/O thread spends per line; what counts for the machine is the CPU of all threads.
// Built and run by bench/logsink/run.sh; prints one JSON object per measured round.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/async.h>
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
    double producer_ns_per_line;  // on the calling ("I/O") threads
    double cpu_ns_per_line;       // every thread of the process, the writer included
    std::uint64_t dropped;
};

// Runs `line(thread, i)` `lines` times on each of `threads` threads; `flush` waits for the
// writer to have written everything. With `spacing` > 0 each thread starts a line every
// `spacing` (a server's pace: one access line per request), and only the time inside the
// calls counts as the producers'; with 0 they log back to back (a burst).
template <typename Line, typename Flush>
round_result measure(int threads, int lines, std::chrono::nanoseconds spacing, Line line,
                     Flush flush) {
    std::atomic<long long> producer_ns{0};
    auto cpu0 = cpu_seconds();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            long long inside = 0;
            auto start = clock_type::now();
            for (int i = 0; i < lines; ++i) {
                if (spacing.count() > 0) {
                    while (clock_type::now() < start + spacing * i) {
                    }
                    auto before = clock_type::now();
                    line(t, i);
                    inside += std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  clock_type::now() - before)
                                  .count();
                } else {
                    line(t, i);
                }
            }
            if (spacing.count() == 0)
                inside =
                    std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - start)
                        .count();
            producer_ns += inside;
        });
    for (auto& t : ts) t.join();
    flush();
    auto cpu = cpu_seconds() - cpu0;
    double total = static_cast<double>(threads) * lines;
    return {static_cast<double>(producer_ns.load()) / total, cpu * 1e9 / total, 0};
}

// The same fields as the server's access line (src/net/server.cpp access_log).
constexpr const char* ids[] = {"3f9a1c2e7b5d4a60-1a2b", "3f9a1c2e7b5d4a60-1a2c"};

}  // namespace

int main(int argc, char** argv) {
    const int lines = argc > 1 ? std::atoi(argv[1]) : 200000;
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
    const auto spacing = std::chrono::nanoseconds(argc > 3 ? std::atoll(argv[3]) : 0);
    const int threads = 2;
    namespace log = neptun::net::log;

    // spdlog: a bounded queue of 8192 lines and one writer thread, the policy that never
    // blocks the caller (1.10 has block and overrun_oldest only), a logfmt pattern.
    spdlog::init_thread_pool(8192, 1);
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto spd = std::make_shared<spdlog::async_logger>(
        "access", sink, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
    spd->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l %v", spdlog::pattern_time_type::utc);

    for (int r = 0; r < rounds; ++r) {
        log::start_async();
        auto dropped_before = log::dropped_lines();
        auto ours = measure(
            threads, lines, spacing,
            [](int t, int i) {
                log::write(log::level::info, "access",
                           {{"method", "PATCH"},
                            {"path", "/api/users/4711/projects/815"},
                            {"status", 200},
                            {"duration_us", 130 + (i & 63)},
                            {"request_id", ids[t]}});
            },
            [] { log::stop_async(); });
        ours.dropped = log::dropped_lines() - dropped_before;

        const auto overrun_before = spdlog::thread_pool()->overrun_counter();
        auto theirs = measure(
            threads, lines, spacing,
            [&](int t, int i) {
                spd->info("event=access method={} path={} status={} duration_us={} request_id={}",
                          "PATCH", "/api/users/4711/projects/815", 200, 130 + (i & 63), ids[t]);
            },
            [&] {
                // spdlog's flush of an async logger queues a flush; wait until the pool's
                // queue is empty so that the writer's CPU is counted.
                spd->flush();
                while (spdlog::thread_pool()->queue_size() > 0)
                    std::this_thread::sleep_for(std::chrono::milliseconds(1));
            });
        theirs.dropped = spdlog::thread_pool()->overrun_counter() - overrun_before;

        std::printf(
            "{\"round\":%d,\"lines\":%d,\"spacing_ns\":%lld,\"ours\":{\"producer_ns\":%.1f,\"cpu_"
            "ns\":%.1f,"
            "\"dropped\":%llu},\"spdlog\":{\"producer_ns\":%.1f,\"cpu_ns\":%.1f,\"dropped\":%llu}}"
            "\n",
            r, threads * lines, static_cast<long long>(spacing.count()), ours.producer_ns_per_line,
            ours.cpu_ns_per_line, static_cast<unsigned long long>(ours.dropped),
            theirs.producer_ns_per_line, theirs.cpu_ns_per_line,
            static_cast<unsigned long long>(theirs.dropped));
        std::fflush(stdout);
    }
    spdlog::shutdown();
}
