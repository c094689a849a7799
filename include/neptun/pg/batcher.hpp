// Where writes may go and how they are grouped into batches: pure logic, no I/O, unit-tested
// without a server. The pool asks pinned_to() before it sends a job, and hands the batcher
// the batchable writes that arrived in one turn of the event loop; it gets back, in the
// order to dispatch them, single jobs and batches (one implicit transaction each) that never
// need two connections and never split one key's writes.
#pragma once

#include <memory>
#include <vector>

#include "neptun/pg/key_pins.hpp"
#include "neptun/pg/pipeline.hpp"

namespace neptun::pg {

// pinned_to(): the keys of a job are on two connections; it waits until one drains.
inline constexpr unsigned pin_conflict = key_pins::none - 1;

// The connection a job's keys (its own, or its parts') are pinned to; key_pins::none when
// none is.
unsigned pinned_to(const job& j, const key_pins& pins);

class batcher {
  public:
    explicit batcher(unsigned max_batch) : max_batch_(max_batch < 1 ? 1 : max_batch) {}

    // A batchable write arrived. True for the first of a turn: the caller schedules cut().
    bool add(std::unique_ptr<job> j) {
        collecting_.push_back(std::move(j));
        return collecting_.size() == 1;
    }
    bool empty() const { return collecting_.empty(); }

    // What arrived since the last cut, as jobs to dispatch in this order. Sorted by key (two
    // batches then lock rows in the same order and cannot deadlock), split by the connection
    // each key is pinned to (0 .. connections-1, then the keys with nothing in flight), each
    // group cut into chunks of up to max_batch writes, a chunk stretched rather than one
    // key's writes split. A chunk of one is dispatched as itself; a batch's deadline is its
    // earliest part's. The vector is the batcher's (the caller moves the jobs out); it keeps
    // its capacity, so a steady load allocates only the batch jobs.
    std::vector<std::unique_ptr<job>>& cut(const key_pins& pins, unsigned connections);

    // Everything not yet cut (the pool stops).
    std::vector<std::unique_ptr<job>> take_all() { return std::exchange(collecting_, {}); }

  private:
    void chunk(std::vector<std::unique_ptr<job>>& group);

    unsigned max_batch_;
    std::vector<std::unique_ptr<job>> collecting_, sorting_, group_, out_;
};

}  // namespace neptun::pg
