#include "neptun/redis/session_cache.hpp"

#include <atomic>
#include <functional>

namespace neptun::redis {
namespace {

struct totals {
    std::atomic<std::uint64_t> hits{0}, misses{0}, invalidations{0}, flushes{0};
    std::atomic<std::int64_t> entries{0}, bytes{0};
};
totals& global_totals() {
    static totals t;
    return t;
}

constexpr auto relaxed = std::memory_order_relaxed;

// What one entry costs: its node, its token's heap bytes and its index slot, roughly.
std::size_t cost_of(const std::string& token) {
    return sizeof(std::list<int>) + 64 + token.capacity() + 48;
}

}  // namespace

session_cache::session_cache(session_cache_options opts) : opts_(opts) {}

void session_cache::set_usable(bool usable) {
    flush();
    usable_ = usable;
}

std::optional<std::int64_t> session_cache::find(std::string_view token, clock::time_point now) {
    if (!usable_) return std::nullopt;
    auto& g = global_totals();
    auto it = index_.find(token);
    if (it == index_.end()) {
        g.misses.fetch_add(1, relaxed);
        return std::nullopt;
    }
    auto node = it->second;
    if (now >= node->expires) {
        erase(node);
        g.misses.fetch_add(1, relaxed);
        return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, node);
    g.hits.fetch_add(1, relaxed);
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
    auto bytes = cost_of(copy);
    if (opts_.max_entries == 0 || bytes > opts_.max_bytes) return false;
    while (!lru_.empty() &&
           (index_.size() >= opts_.max_entries || bytes_ + bytes > opts_.max_bytes))
        erase(std::prev(lru_.end()));
    lru_.push_front(node{std::move(copy), user_id, expires, bytes});
    index_.emplace(std::string_view(lru_.front().token), lru_.begin());
    bytes_ += bytes;
    auto& g = global_totals();
    g.entries.fetch_add(1, relaxed);
    g.bytes.fetch_add(static_cast<std::int64_t>(bytes), relaxed);
    return true;
}

void session_cache::invalidate(std::string_view token) {
    global_totals().invalidations.fetch_add(1, relaxed);
    ring_[invalidations_ % ring_size] = std::hash<std::string_view>{}(token);
    ++invalidations_;
    if (auto it = index_.find(token); it != index_.end()) erase(it->second);
}

void session_cache::flush() {
    auto& g = global_totals();
    g.flushes.fetch_add(1, relaxed);
    g.entries.fetch_sub(static_cast<std::int64_t>(index_.size()), relaxed);
    g.bytes.fetch_sub(static_cast<std::int64_t>(bytes_), relaxed);
    index_.clear();
    lru_.clear();
    bytes_ = 0;
    ++epoch_;
}

void session_cache::erase(lru_list::iterator it) {
    auto& g = global_totals();
    g.entries.fetch_sub(1, relaxed);
    g.bytes.fetch_sub(static_cast<std::int64_t>(it->bytes), relaxed);
    bytes_ -= it->bytes;
    index_.erase(std::string_view(it->token));
    lru_.erase(it);
}

session_cache_stats session_cache_totals() {
    auto& g = global_totals();
    auto non_negative = [](std::int64_t v) { return static_cast<std::uint64_t>(v < 0 ? 0 : v); };
    return {g.hits.load(relaxed),
            g.misses.load(relaxed),
            g.invalidations.load(relaxed),
            g.flushes.load(relaxed),
            non_negative(g.entries.load(relaxed)),
            non_negative(g.bytes.load(relaxed))};
}

void render_session_cache_metrics(std::string& out) {
    auto s = session_cache_totals();
    auto line = [&out](const char* name, const char* type, const char* help, std::uint64_t v) {
        out += "# HELP ";
        out += name;
        out += ' ';
        out += help;
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += type;
        out += '\n';
        out += name;
        out += ' ';
        out += std::to_string(v);
        out += '\n';
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
