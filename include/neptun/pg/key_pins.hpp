// Which connection holds the in-flight writes of each key (a project id): pure logic, no
// I/O, unit-tested without a server. The pool sends every write of a key to the connection
// that already has one of that key in flight, so one key's writes run in the order they
// were sent, on one connection, never concurrently on two; a key with nothing in flight is
// free to go to any connection.
//
// An open-addressing table (linear probing, backward-shift deletion): once it has grown to
// the pool's working set, pinning and unpinning allocate nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace neptun::pg {

class key_pins {
  public:
    static constexpr unsigned none = ~0u;

    explicit key_pins(std::size_t capacity = 64) : slots_(round_up(capacity)) {}

    // The connection the key's in-flight writes are on, or `none`.
    unsigned find(std::int64_t key) const {
        if (used_ == 0) return none;
        for (std::size_t i = home(key);; i = next(i)) {
            const auto& s = slots_[i];
            if (s.count == 0) return none;
            if (s.key == key) return s.conn;
        }
    }

    // One more write of `key` in flight on `conn`. A key is on one connection at a time: the
    // caller pins a key to another connection only once its count went back to zero.
    void pin(std::int64_t key, unsigned conn) {
        if ((used_ + 1) * 2 > slots_.size()) grow();
        for (std::size_t i = home(key);; i = next(i)) {
            auto& s = slots_[i];
            if (s.count == 0) {
                s = {key, conn, 1};
                ++used_;
                return;
            }
            if (s.key == key) {
                ++s.count;
                return;
            }
        }
    }

    // One write of `key` finished (or was lost with its connection).
    void unpin(std::int64_t key) {
        if (used_ == 0) return;
        std::size_t i = home(key);
        for (;; i = next(i)) {
            if (slots_[i].count == 0) return;  // not pinned
            if (slots_[i].key == key) break;
        }
        if (--slots_[i].count > 0) return;
        --used_;
        // Backward shift: move later entries of the probe chain into the hole.
        for (std::size_t j = next(i);; j = next(j)) {
            auto& s = slots_[j];
            if (s.count == 0) break;
            std::size_t h = home(s.key);
            // s may move to i if its home is not in the cyclic range (i, j].
            bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
            if (stays) continue;
            slots_[i] = s;
            s.count = 0;
            i = j;
        }
        slots_[i].count = 0;
    }

    std::size_t size() const { return used_; }  // keys with writes in flight
    unsigned count(std::int64_t key) const {
        if (used_ == 0) return 0;
        for (std::size_t i = home(key);; i = next(i)) {
            const auto& s = slots_[i];
            if (s.count == 0) return 0;
            if (s.key == key) return s.count;
        }
    }
    void clear() {
        for (auto& s : slots_) s.count = 0;
        used_ = 0;
    }

  private:
    struct slot {
        std::int64_t key = 0;
        unsigned conn = none;
        unsigned count = 0;  // 0: empty
    };

    static std::size_t round_up(std::size_t n) {
        std::size_t c = 16;
        while (c < n) c *= 2;
        return c;
    }
    std::size_t home(std::int64_t key) const {
        auto x = static_cast<std::uint64_t>(key);
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        return static_cast<std::size_t>(x) & (slots_.size() - 1);
    }
    std::size_t next(std::size_t i) const { return (i + 1) & (slots_.size() - 1); }

    void grow() {
        std::vector<slot> old(slots_.size() * 2);
        old.swap(slots_);
        used_ = 0;
        for (const auto& s : old) {
            if (s.count == 0) continue;
            std::size_t i = home(s.key);
            while (slots_[i].count != 0) i = next(i);
            slots_[i] = s;
            ++used_;
        }
    }

    std::vector<slot> slots_;
    std::size_t used_ = 0;
};

}  // namespace neptun::pg
