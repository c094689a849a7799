// The decisions of one Redis connection, with no I/O (sans-io): the handshake before
// readiness, which reply belongs to which caller, callers that gave up, the health-check
// PING, and the back-off between connections. The client's I/O loop (client.cpp) feeds it
// bytes and time and writes what it asks to send; its unit tests feed it by hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "neptun/net/completion.hpp"

struct redisReader;
struct redisReply;

namespace neptun::redis {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct reply {
    enum class kind {
        string,       // a bulk or status string in `value`
        nil,          // the key does not exist
        error,        // Redis answered an error: its first word only in `value` (e.g. WRONGTYPE)
        unavailable,  // no connection, timed out, or lost before the reply
        integer,      // an integer reply in `number` (PTTL, CLIENT ID)
    };
    kind type = kind::unavailable;
    std::string value;
    std::int64_t number = 0;
};

// The first word of an error reply ("LOADING", "WRONGTYPE"): all that is ever logged or kept
// of it, since Redis may echo the command's arguments (a session key) after it.
std::string_view error_word(std::string_view error_text);

// Appends one command in RESP (an array of bulk strings) to `out`.
void append_command(std::string& out, std::span<const std::string_view> args);
inline void append_command(std::string& out, std::initializer_list<std::string_view> args) {
    append_command(out, std::span<const std::string_view>(args.begin(), args.size()));
}

// hiredis's redisReader as a RESP decoder: bytes in, whole replies out.
class resp_reader {
  public:
    resp_reader();
    ~resp_reader();
    resp_reader(const resp_reader&) = delete;
    resp_reader& operator=(const resp_reader&) = delete;
    struct reply_deleter {
        void operator()(redisReply* r) const;
    };
    using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;
    bool feed(const char* data, std::size_t n);  // false: out of memory
    // The next whole reply; nullptr when more bytes are needed. Sets `broken` on a protocol
    // error (the connection must then be dropped).
    reply_ptr next(bool& broken);
    void reset();

  private:
    redisReader* reader_;
};

struct backoff {
    milliseconds min{50};
    milliseconds max{2000};
    unsigned failures = 0;  // connections in a row that never answered the handshake
    // The wait before the next connection attempt; grows with each failure, with jitter.
    milliseconds next(std::mt19937& rng) const;
};

struct connection_options {
    std::string username, password;
    bool auth = false;
    unsigned db = 0;
    bool check_role_master = false;  // Sentinel: ROLE must say master
    milliseconds handshake_timeout{2000};
    milliseconds health_interval{1000};
    milliseconds health_timeout{2000};
    // Callers waiting on one connection at most; more are answered unavailable at once, so
    // a server that stopped reading cannot make the queue (and memory) grow without bound.
    std::size_t max_waiting = 10000;
};

class connection_machine {
  public:
    enum class state { closed, handshake, ready };
    enum class purpose : std::uint8_t { user, auth, select, role, handshake_ping, health_ping };

    explicit connection_machine(connection_options opts);

    // The socket is up: queue the handshake (AUTH, SELECT, ROLE, PING).
    void on_open(clock::time_point now);
    // The socket is gone, for whatever reason: every caller still waiting answers
    // unavailable. Safe to call more than once.
    void on_close();
    // A caller's command. Unless ready it answers unavailable at once. Returns the caller's
    // deadline when it waits (for the I/O loop's timer), or nullopt when it was answered.
    std::optional<clock::time_point> submit(std::span<const std::string_view> args,
                                            clock::time_point deadline, net::completion<reply> done,
                                            clock::time_point now);
    // Bytes read from the socket.
    void on_bytes(const char* data, std::size_t n, clock::time_point now);
    // Time passed: callers past their deadline answer unavailable (their replies will be
    // read and dropped), the health PING is sent or found overdue, the handshake times out.
    void on_timer(clock::time_point now);
    // When on_timer next has something to do (time_point::max() for nothing).
    clock::time_point next_timer() const;

    // Bytes to write, all of them in one write.
    bool has_output() const { return !out_.empty(); }
    void take_output(std::string& into) {
        into.clear();
        into.swap(out_);
    }
    // Answers decided since the last call, to be delivered outside the machine.
    // f(net::completion<reply>, reply, clock::time_point submitted)
    template <typename F>
    void deliver(F&& f) {
        if (answers_.empty()) return;
        auto done = std::move(answers_);
        answers_.clear();
        for (auto& a : done) f(std::move(a.done), std::move(a.rep), a.submitted);
    }

    state current() const { return state_; }
    bool ready() const { return state_ == state::ready; }
    // Set when the connection must be closed; says why (never quoting a reply beyond its
    // first word).
    const std::optional<std::string>& must_drop() const { return drop_; }
    // The first word of the error that failed the handshake (for the log), if any.
    const std::string& handshake_error() const { return handshake_error_; }
    backoff& retry() { return backoff_; }
    std::size_t waiting() const { return fifo_.size(); }

    struct counters {
        std::uint64_t timeouts = 0;      // callers answered unavailable at their deadline
        std::uint64_t late_replies = 0;  // replies read after their caller gave up
        std::uint64_t health_timeouts = 0;
    };
    const counters& stats() const { return stats_; }

  private:
    struct pending {
        purpose what = purpose::user;
        net::completion<reply> done;  // empty once answered (or for internal commands)
        clock::time_point deadline;
        clock::time_point submitted;
    };
    struct answer {
        net::completion<reply> done;
        reply rep;
        clock::time_point submitted;
    };
    void send_internal(purpose what, std::initializer_list<std::string_view> args,
                       clock::time_point deadline);
    void handle(pending& p, const redisReply& r, clock::time_point now);
    void drop(std::string why);

    connection_options opts_;
    state state_ = state::closed;
    std::deque<pending> fifo_;
    // fifo_[i] is command number popped_ + i; pushed_ numbers the next one.
    std::uint64_t popped_ = 0;
    std::uint64_t pushed_ = 0;
    // The waiting callers' deadlines, earliest first, so that a tick costs O(expired + 1)
    // instead of a walk of the queue. Entries whose caller was answered by a reply stay
    // until their deadline passes (they cost at most one empty tick).
    using deadline_entry = std::pair<clock::time_point, std::uint64_t>;
    std::priority_queue<deadline_entry, std::vector<deadline_entry>, std::greater<>> deadlines_;
    void forget_queue();
    std::string out_;
    resp_reader reader_;
    std::vector<answer> answers_;
    std::optional<std::string> drop_;
    std::string handshake_error_;
    clock::time_point handshake_deadline_{};
    clock::time_point next_ping_{};
    std::optional<clock::time_point> ping_deadline_;  // a health PING is in flight
    backoff backoff_;
    counters stats_;
};

// A push on the invalidation connection (CLIENT TRACKING in RESP2 REDIRECT mode):
// ["message", "__redis__:invalidate", [key, ...]], or a nil instead of the keys when every
// key may have changed (FLUSHALL, FLUSHDB). Keys point into `r`.
struct invalidation {
    bool everything = false;
    std::vector<std::string_view> keys;
};
std::optional<invalidation> parse_invalidation(const redisReply& r);

// Sentinel replies, parsed without I/O.
// SENTINEL get-master-addr-by-name: ["ip", "port"], or nil when the name is unknown.
std::optional<std::pair<std::string, std::uint16_t>> parse_master_addr(const redisReply& r);
// A +switch-master message: ["message", "+switch-master", "<name> <old ip> <old port> <new ip>
// <new port>"]. Returns the new address when it concerns `master_name`.
std::optional<std::pair<std::string, std::uint16_t>> parse_switch_master(
    const redisReply& r, std::string_view master_name);

}  // namespace neptun::redis
