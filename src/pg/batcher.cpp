#include "neptun/pg/batcher.hpp"

#include <algorithm>

namespace neptun::pg {

unsigned pinned_to(const job& j, const key_pins& pins) {
    unsigned to = key_pins::none;
    auto check = [&](std::int64_t k) {
        if (k == 0) return true;
        auto at = pins.find(k);
        if (at == key_pins::none || at == to) return true;
        if (to == key_pins::none) {
            to = at;
            return true;
        }
        return false;
    };
    if (j.parts.empty()) {
        check(j.key);
        return to;
    }
    for (const auto& p : j.parts)
        if (!check(p->key)) return pin_conflict;
    return to;
}

std::vector<std::unique_ptr<job>>& batcher::cut(const key_pins& pins, unsigned connections) {
    out_.clear();
    sorting_.swap(collecting_);
    collecting_.clear();
    std::stable_sort(sorting_.begin(), sorting_.end(),
                     [](const auto& a, const auto& b) { return a->key < b->key; });
    for (unsigned to = 0; to <= connections; ++to) {
        unsigned want = to == connections ? key_pins::none : to;
        group_.clear();
        for (auto& j : sorting_)
            if (j && pins.find(j->key) == want) group_.push_back(std::move(j));
        chunk(group_);
    }
    // Keys pinned to a connection beyond `connections` (none in the pool): one more group.
    group_.clear();
    for (auto& j : sorting_)
        if (j) group_.push_back(std::move(j));
    chunk(group_);
    group_.clear();
    sorting_.clear();
    return out_;
}

void batcher::chunk(std::vector<std::unique_ptr<job>>& jobs) {
    for (std::size_t i = 0; i < jobs.size();) {
        auto end = std::min(jobs.size(), i + max_batch_);
        while (end < jobs.size() && jobs[end]->key == jobs[end - 1]->key) ++end;
        if (end - i == 1) {
            out_.push_back(std::move(jobs[i]));
            i = end;
            continue;
        }
        auto b = std::make_unique<job>();
        b->deadline = clock::time_point::max();
        b->parts.reserve(end - i);
        for (; i < end; ++i) {
            b->deadline = std::min(b->deadline, jobs[i]->deadline);
            b->parts.push_back(std::move(jobs[i]));
        }
        out_.push_back(std::move(b));
    }
}

}  // namespace neptun::pg
