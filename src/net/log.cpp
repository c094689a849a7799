#include "neptun/net/log.hpp"

#include "neptun/net/text.hpp"

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

namespace neptun::net::log {
namespace {

std::atomic<int> g_level{static_cast<int>(level::info)};
std::atomic<int> g_format{static_cast<int>(format::logfmt)};

constexpr std::string_view level_name(level l) {
    switch (l) {
        case level::debug:
            return "debug";
        case level::info:
            return "info";
        case level::warn:
            return "warn";
        case level::error:
            return "error";
    }
    return "info";
}

bool needs_quotes(std::string_view s) {
    if (s.empty()) return true;
    for (unsigned char c : s)
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
    return false;
}

void append_value(std::string& out, const field::value_type& v, format fmt) {
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::string_view>) {
                if (fmt == format::json || needs_quotes(x)) {
                    out += '"';
                    append_json_escaped(out, x);
                    out += '"';
                } else {
                    out += x;
                }
            } else if constexpr (std::is_same_v<T, bool>) {
                out += x ? "true" : "false";
            } else if constexpr (std::is_same_v<T, double>) {
                char buf[32];
                int n = std::snprintf(buf, sizeof buf, "%.6g", x);
                out.append(buf, static_cast<std::size_t>(n));
            } else {
                char buf[24];
                auto r = std::to_chars(buf, buf + sizeof buf, x);
                out.append(buf, r.ptr);
            }
        },
        v);
}

// "2026-12-04T19:30:01.123Z": the part up to the second is formatted once a second per
// thread, the milliseconds for every line.
void append_timestamp(std::string& out) {
    using namespace std::chrono;
    thread_local std::time_t cached_at = -1;
    thread_local char cached[80];
    auto now = system_clock::now();
    auto t = system_clock::to_time_t(now);
    if (t != cached_at) {
        std::tm tm{};
        gmtime_r(&t, &tm);
        std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_at = t;
    }
    auto ms = static_cast<int>(duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000);
    out.append(cached, 20);
    const char digits[4] = {static_cast<char>('0' + ms / 100),
                            static_cast<char>('0' + ms / 10 % 10), static_cast<char>('0' + ms % 10),
                            'Z'};
    out.append(digits, 4);
}

}  // namespace

bool parse_level(std::string_view text, level& out) {
    for (level l : {level::debug, level::info, level::warn, level::error}) {
        if (text == level_name(l)) {
            out = l;
            return true;
        }
    }
    return false;
}

void configure(level min_level, format fmt) {
    g_level.store(static_cast<int>(min_level), std::memory_order_relaxed);
    g_format.store(static_cast<int>(fmt), std::memory_order_relaxed);
}

bool enabled(level l) {
    return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed);
}

namespace {

void append_line(std::string& out, level l, std::string_view event,
                 std::initializer_list<field> fields, format fmt) {
    if (fmt == format::json) {
        out += "{\"ts\":\"";
        append_timestamp(out);
        out += "\",\"level\":\"";
        out += level_name(l);
        out += "\",\"event\":\"";
        append_json_escaped(out, event);
        out += '"';
        for (const auto& f : fields) {
            out += ",\"";
            append_json_escaped(out, f.key);
            out += "\":";
            append_value(out, f.value, fmt);
        }
        out += "}\n";
    } else {
        out += "ts=";
        append_timestamp(out);
        out += " level=";
        out += level_name(l);
        out += " event=";
        append_value(out, std::string_view(event), fmt);
        for (const auto& f : fields) {
            out += ' ';
            out += f.key;
            out += '=';
            append_value(out, f.value, fmt);
        }
        out += '\n';
    }
}

}  // namespace

std::string format_line(level l, std::string_view event, std::initializer_list<field> fields,
                        format fmt) {
    std::string out;
    append_line(out, l, event, fields, fmt);
    return out;
}

namespace {

// One write() per call keeps lines from different threads whole.
void write_all(std::string_view text) {
    const char* p = text.data();
    std::size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(STDERR_FILENO, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

// The asynchronous sink: I/O threads append formatted lines to a bounded buffer under a
// short lock and never wait for stderr; one writer thread hands whole batches to write(2).
// Past the bound, new lines are dropped and counted, so a slow log pipe never slows a
// request (the lines already queued, errors among them, are kept).
class async_sink {
  public:
    void start(std::size_t max_bytes) {
        std::lock_guard lock(mutex_);
        if (running_) return;
        max_bytes_ = max_bytes;
        running_ = true;
        writer_ = std::thread([this] { drain(); });
    }
    bool running() const { return running_.load(std::memory_order_acquire); }

    // The writer is woken only once a batch is worth a write (or by its own 10 ms tick): a
    // wake-up and a write(2) per line would cost more than the line itself.
    void push(std::string_view line) {
        bool wake;
        {
            std::unique_lock lock(mutex_);
            if (!running_) {  // stop_async() got here first: the writer is gone
                lock.unlock();
                write_all(line);
                return;
            }
            if (queued_.size() + line.size() > max_bytes_) {
                dropped_.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            auto before = queued_.size();
            queued_ += line;
            wake = before < wake_bytes && queued_.size() >= wake_bytes;
        }
        if (wake) wake_.notify_one();
    }

    void stop() {
        {
            std::lock_guard lock(mutex_);
            if (!running_) return;
            running_ = false;
        }
        wake_.notify_one();
        writer_.join();
    }

    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

  private:
    static constexpr std::size_t wake_bytes = 32768;

    void drain() {
        std::string batch;
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait_for(lock, std::chrono::milliseconds(10),
                           [this] { return queued_.size() >= wake_bytes || !running_; });
            if (queued_.empty()) {
                if (!running_) return;
                continue;
            }
            batch.swap(queued_);
            lock.unlock();
            write_all(batch);
            batch.clear();
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::string queued_;
    std::size_t max_bytes_ = 0;
    std::atomic<bool> running_{false};
    std::atomic<std::uint64_t> dropped_{0};
    std::thread writer_;
};

async_sink& sink() {
    static async_sink s;
    return s;
}

}  // namespace

void start_async(std::size_t max_queued_bytes) {
    sink().start(max_queued_bytes);
}

void stop_async() {
    sink().stop();
}

std::uint64_t dropped_lines() {
    return sink().dropped();
}

void write(level l, std::string_view event, std::initializer_list<field> fields) {
    if (!enabled(l)) return;
    // Formatted into this thread's own buffer: no allocation per line once it has grown.
    thread_local std::string line;
    line.clear();
    append_line(line, l, event, fields,
                static_cast<format>(g_format.load(std::memory_order_relaxed)));
    if (sink().running())
        sink().push(line);
    else
        write_all(line);
}

}  // namespace neptun::net::log
