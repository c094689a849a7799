// Sessions kept in memory while Redis tells us of every change to them (CONTRACT.md §2,
// server-assisted client-side caching). Pure logic, no I/O: the Redis client feeds it the
// invalidations it reads and says when tracking is confirmed or lost; the session store
// asks it before it sends a GET and offers it what the GET and PTTL said.
//
// The rules, each one a way a cache like this has gone wrong elsewhere:
// - A fetch takes a ticket before its GET is sent. An invalidation of the same token (or a
//   flush, or tracking lost) that arrives before the fetch completes voids the ticket, so a
//   reply overtaken by its invalidation is never cached (the invalidation connection and
//   the data connection are two sockets: their order is not Redis's order).
// - An entry never outlives the key's TTL as PTTL read it (counted from when the GET was
//   sent), nor `max_age`: Redis's expiry invalidations are best-effort.
// - Only sessions that authenticate are cached: unknown tokens are never kept, so a flood
//   of them cannot evict a real user's entry. Entries and bytes are both bounded; when full,
//   the least recently used session goes.
// - Not usable at all while tracking is not confirmed; every change of that state and every
//   flush voids the tickets taken before it.
// One per I/O thread, touched only from that thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace neptun::redis {

struct session_cache_options {
    std::size_t max_entries = 100000;
    std::size_t max_bytes = 64u << 20;
    std::chrono::milliseconds max_age{60000};
};

class session_cache {
  public:
    using clock = std::chrono::steady_clock;

    struct ticket {
        std::uint64_t epoch = 0;
        std::uint64_t invalidations = 0;  // how many had been seen when it was taken
        clock::time_point sent;
    };

    explicit session_cache(session_cache_options opts);
    ~session_cache();
    session_cache(const session_cache&) = delete;
    session_cache& operator=(const session_cache&) = delete;

    bool usable() const { return usable_; }
    // Tracking confirmed on a fresh pair of connections (true), or lost (false): either way
    // everything cached so far and every ticket taken so far is void.
    void set_usable(bool usable);

    // The cached user id of `token`, if any and not expired.
    std::optional<std::int64_t> find(std::string_view token, clock::time_point now);
    // Before the GET is sent; nothing when the cache is not usable.
    std::optional<ticket> begin(clock::time_point now) const;
    // The GET found a session of `user_id`, and PTTL said `pttl_ms` (-1: no expiry). Cached
    // unless the ticket was voided meanwhile, the key is gone (-2) or has no time left.
    // Returns whether it was cached.
    bool offer(const ticket& t, std::string_view token, std::int64_t user_id, std::int64_t pttl_ms);

    // Redis said `token`'s key changed (set, deleted, expired, evicted).
    void invalidate(std::string_view token);
    // Redis said every key may have changed (FLUSHALL, FLUSHDB), or a connection dropped.
    void flush();

    std::size_t entries() const { return index_.size(); }
    std::size_t bytes() const { return bytes_; }

  private:
    struct node {
        std::string token;
        std::int64_t user_id;
        clock::time_point expires;
        std::size_t bytes;
    };
    using lru_list = std::list<node>;  // most recently used first
    void erase(lru_list::iterator it);
    void clear();
    bool voided(const ticket& t, std::size_t token_hash) const;

  public:
    // This cache's counters: written by its own thread only (no shared cache line on the
    // hot path), read by /metrics from the admin thread.
    struct counters {
        std::atomic<std::uint64_t> hits{0}, misses{0}, invalidations{0}, flushes{0};
        std::atomic<std::uint64_t> entries{0}, bytes{0};
    };
    const counters& stats() const { return stats_; }

  private:
    counters stats_;

    session_cache_options opts_;
    bool usable_ = false;
    std::uint64_t epoch_ = 0;
    lru_list lru_;
    std::unordered_map<std::string_view, lru_list::iterator> index_;  // views into lru_ nodes
    std::size_t bytes_ = 0;
    // The hashes of the last invalidated tokens, by number: a ticket is void if one of those
    // seen since it was taken has its token's hash (a collision only costs a cache miss), or
    // if more were seen than the ring holds.
    static constexpr std::size_t ring_size = 1024;
    std::array<std::size_t, ring_size> ring_{};
    std::uint64_t invalidations_ = 0;
};

// The sum over every live cache (one per I/O thread), for /metrics.
struct session_cache_stats {
    std::uint64_t hits, misses, invalidations, flushes, entries, bytes;
};
session_cache_stats session_cache_totals();
// The caches' lines of /metrics (Prometheus text), appended to `out`.
void render_session_cache_metrics(std::string& out);

}  // namespace neptun::redis
