#include "neptun/redis/session_cache.hpp"

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <vector>

#include "neptun/net/metrics.hpp"

namespace neptun::redis {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

// The live caches, for /metrics; a cache registers itself for its lifetime.
std::mutex registry_mutex;
std::vector<const session_cache*>& registry() {
    static std::vector<const session_cache*> caches;
    return caches;
}

void bump(std::atomic<std::uint64_t>& c, std::int64_t by = 1) {
    // Only the owning thread writes: a load and a store, no locked instruction.
    c.store(c.load(relaxed) + static_cast<std::uint64_t>(by), relaxed);
}

}  // namespace

session_cache::session_cache(session_cache_options opts) : opts_(opts) {
    std::lock_guard lock(registry_mutex);
    registry().push_back(this);
}

session_cache::~session_cache() {
    std::lock_guard lock(registry_mutex);
    std::erase(registry(), this);
}

void session_cache::set_usable(bool usable) {
    clear();  // not counted as a flush: nothing Redis said
    usable_ = usable;
}

std::optional<std::int64_t> session_cache::find(std::string_view token, clock::time_point now) {
    if (!usable_) return std::nullopt;
    auto it = index_.find(token);
    if (it == index_.end()) {
        bump(stats_.misses);
        return std::nullopt;
    }
    auto node = it->second;
    if (now >= node->expires) {
        erase(node);
        bump(stats_.misses);
        return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, node);
    bump(stats_.hits);
    return node->user_id;
}

std::optional<session_cache::ticket> session_cache::begin(clock::time_point now) const {
    if (!usable_) return std::nullopt;
    return ticket{epoch_, invalidations_, now};
}

bool session_cache::voided(const ticket& t, std::size_t token_hash) const {
    if (t.epoch != epoch_ || !usable_) return true;
    auto seen = invalidations_ - t.invalidations;
    if (seen > ring_size) return true;
    for (auto n = t.invalidations; n < invalidations_; ++n)
        if (ring_[n % ring_size] == token_hash) return true;
    return false;
}

bool session_cache::offer(const ticket& t, std::string_view token, std::int64_t user_id,
                          std::int64_t pttl_ms) {
    if (pttl_ms == 0 || pttl_ms < -1) return false;  // gone (-2) or no time left
    if (voided(t, std::hash<std::string_view>{}(token))) return false;
    auto expires = t.sent + opts_.max_age;
    if (pttl_ms > 0) expires = std::min(expires, t.sent + std::chrono::milliseconds(pttl_ms));
    if (auto it = index_.find(token); it != index_.end()) erase(it->second);
    std::string copy(token);
    // What the entry costs: its list node (two links and the node), the token's heap bytes
    // when they are not inline, the index's node and bucket, and malloc's headers.
    auto bytes = 2 * sizeof(void*) + sizeof(node) +
                 (copy.capacity() > 15 ? copy.capacity() + 1 : 0) +
                 sizeof(std::pair<std::string_view, lru_list::iterator>) + 2 * sizeof(void*) + 32;
    if (opts_.max_entries == 0 || bytes > opts_.max_bytes) return false;
    while (!lru_.empty() &&
           (index_.size() >= opts_.max_entries || bytes_ + bytes > opts_.max_bytes))
        erase(std::prev(lru_.end()));
    lru_.push_front(node{std::move(copy), user_id, expires, bytes});
    index_.emplace(std::string_view(lru_.front().token), lru_.begin());
    bytes_ += bytes;
    stats_.entries.store(index_.size(), relaxed);
    stats_.bytes.store(bytes_, relaxed);
    return true;
}

void session_cache::invalidate(std::string_view token) {
    bump(stats_.invalidations);
    ring_[invalidations_ % ring_size] = std::hash<std::string_view>{}(token);
    ++invalidations_;
    if (auto it = index_.find(token); it != index_.end()) erase(it->second);
}

void session_cache::flush() {
    bump(stats_.flushes);
    clear();
}

void session_cache::clear() {
    index_.clear();
    lru_.clear();
    bytes_ = 0;
    ++epoch_;
    stats_.entries.store(0, relaxed);
    stats_.bytes.store(0, relaxed);
}

void session_cache::erase(lru_list::iterator it) {
    bytes_ -= it->bytes;
    index_.erase(std::string_view(it->token));
    lru_.erase(it);
    stats_.entries.store(index_.size(), relaxed);
    stats_.bytes.store(bytes_, relaxed);
}

session_cache_stats session_cache_totals() {
    session_cache_stats t{};
    std::lock_guard lock(registry_mutex);
    for (const auto* c : registry()) {
        const auto& s = c->stats();
        t.hits += s.hits.load(relaxed);
        t.misses += s.misses.load(relaxed);
        t.invalidations += s.invalidations.load(relaxed);
        t.flushes += s.flushes.load(relaxed);
        t.entries += s.entries.load(relaxed);
        t.bytes += s.bytes.load(relaxed);
    }
    return t;
}

void render_session_cache_metrics(std::string& out) {
    auto s = session_cache_totals();
    auto line = [&out](const char* name, const char* type, const char* help, std::uint64_t v) {
        net::append_metric(out, name, help, static_cast<double>(v), type);
    };
    line("neptun_session_cache_hits_total", "counter",
         "Session lookups answered from the cache (no Redis round trip).", s.hits);
    line("neptun_session_cache_misses_total", "counter",
         "Session lookups the usable cache could not answer (sent to Redis).", s.misses);
    line("neptun_session_cache_invalidations_total", "counter",
         "Session keys Redis said had changed.", s.invalidations);
    line("neptun_session_cache_flushes_total", "counter",
         "Whole-cache flushes (a connection dropped, tracking changed, FLUSHDB/FLUSHALL).",
         s.flushes);
    line("neptun_session_cache_entries", "gauge", "Sessions cached, all I/O threads.", s.entries);
    line("neptun_session_cache_bytes", "gauge", "Memory the cached sessions take, about.", s.bytes);
}

}  // namespace neptun::redis
