// One connection's pipeline of sent jobs as a state machine: pure logic, no I/O, unit-tested
// with synthetic events. The pool's I/O driver feeds it what libpq returns (a result, an
// error, PGRES_PIPELINE_ABORTED, PGRES_PIPELINE_SYNC) and carries out what it decides: which
// job a result belongs to, when a job is complete, when the session must be recycled, what
// each part of a failed batch gets, and since when the watchdog measures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "neptun/net/completion.hpp"
#include "neptun/pg/key_pins.hpp"
#include "neptun/pg/result.hpp"

namespace neptun::pg {

// One request (a statement), a batch of requests (its parts, one implicit transaction), or
// a connection's setup. Sent as its statements followed by one Sync.
struct job {
    std::size_t stmt = 0;
    std::span<const param> params;
    clock::time_point deadline;  // the caller gives up then
    clock::time_point queued;
    clock::time_point sent;
    net::completion<result> handler;  // empty once answered
    result res;
    bool got_result = false;
    bool setup = false;  // the per-connection setup: SET and PREPAREs
    std::int64_t key = 0;
    std::vector<std::unique_ptr<job>> parts;  // a batch: its statements, then one Sync
    std::size_t results = 0;                  // results seen so far (batches)

    // Someone still waits for this job (or for one of its parts).
    bool waited_for() const {
        if (handler) return true;
        for (const auto& p : parts)
            if (p->handler) return true;
        return false;
    }
    bool succeeded() const { return got_result && res.outcome() == result::kind::ok; }
};

// What an error result means, from fields that do not depend on the server's lc_messages.
struct error_class {
    result::kind kind = result::kind::sql_error;  // sql_error, or unavailable (an outage)
    bool recycles = false;                        // the session can no longer serve us
};
// sqlstate: PG_DIAG_SQLSTATE ("" for libpq's own errors); source_file: PG_DIAG_SOURCE_FILE
// ("" when absent), which tells the one 0A000 that recycles (plancache.c's "cached plan must
// not change result type") from the other feature_not_supported errors.
error_class classify_error(std::string_view sqlstate, std::string_view source_file);

class pipeline {
  public:
    // A job was sent (its statements and Sync are queued for the socket) at `now`.
    void push(std::unique_ptr<job> j, clock::time_point now);

    // libpq's results for the front job, in order. A batch's results go to its parts one by
    // one; the first error of a job (or part) is its outcome.
    void on_rows(result r, clock::time_point now);
    void on_error(result r, const error_class& e, clock::time_point now);
    void on_aborted(clock::time_point now);  // PGRES_PIPELINE_ABORTED

    // PGRES_PIPELINE_SYNC: the front job is complete (committed, or rolled back whole).
    struct completed {
        std::unique_ptr<job> done;
        // This request's own error said the session is unusable: from now on the
        // connection takes no new work, runs out what is in its pipeline (the server runs
        // it anyway: a 503 for it could be overwritten by a retry), then closes.
        bool began_draining = false;
    };
    completed on_sync(clock::time_point now);

    // The connection is gone: everything in flight, front first (none of it can commit now).
    std::deque<std::unique_ptr<job>> take_all();
    // A new session on the connection: not draining, nothing to recycle.
    void reset();

    bool empty() const { return inflight_.empty(); }
    std::size_t size() const { return inflight_.size(); }
    const job& front() const { return *inflight_.front(); }
    unsigned users() const { return users_; }  // requests in flight (not the setup)
    bool draining() const { return draining_; }
    bool drained() const { return draining_ && inflight_.empty(); }  // close it now
    const std::string& recycle_reason() const { return recycle_; }

    // The watchdog's start: when the front job became the front (sent to an empty pipeline,
    // or the job before it completed), or when its last result came back.
    clock::time_point front_since() const { return front_since_; }
    bool stalled(clock::time_point now, clock::duration grace) const {
        return !inflight_.empty() && now > front_since_ + grace;
    }

  private:
    job* target();  // the job or batch part the next result belongs to

    std::deque<std::unique_ptr<job>> inflight_;
    unsigned users_ = 0;
    clock::time_point front_since_{};
    std::string recycle_;  // why the session is unusable: closed once drained
    bool draining_ = false;
};

// The fate of each part of a batch whose Sync came back. Decided once the batch's own keys
// were unpinned, so `pins` holds only writes sent behind it.
enum class part_fate {
    answer,       // the batch committed: the part gets its own result
    own_outage,   // its own statement hit an outage (a timeout, a deadlock): 503, its error
    later_write,  // rolled back, and its key has a later write in flight: 503 (sent again
                  // it would commit after that write and overwrite it)
    resend,       // rolled back because of another part: sent again alone, at once
    abandoned,    // nobody waits for it any more
};
bool batch_committed(const job& batch);
std::vector<part_fate> settle_batch(const job& batch, const key_pins& pins);

}  // namespace neptun::pg
