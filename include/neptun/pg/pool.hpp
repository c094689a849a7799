// An asynchronous PostgreSQL connection pool on libpq, driven by Boost.Asio. One pool per
// I/O thread, touched only from that thread (no strand, no lock). Every connection runs in
// pipeline mode: several requests' statements are in flight on it at once, each followed by
// its own Sync, so each is its own transaction. A request is answered only when its Sync
// came back, i.e. after the commit. No libpq call here ever blocks.
//
// One order per key (a project id, the `key` of async_execute):
//  - A job that was sent is answered only once its outcome is known: its Sync came back
//    (committed, or failed and rolled back), or its connection died (it can no longer
//    commit). Never at its deadline: a 503 for a write that may still commit would let the
//    client's retry commit first and then be overwritten. The server's statement_timeout
//    (below the handler timeout) is what bounds the wait; the watchdog catches a peer that
//    went silent. A job still waiting for a connection is answered 503 at its deadline
//    (or after `wait`) and is then never sent.
//  - Keys are pinned (key_pins.hpp): while a key has writes in flight, every further write
//    of that key goes to the same connection, behind them, so one key's writes never run
//    on two connections at once and commit in arrival order. A key with nothing in flight
//    goes to the least loaded connection. The wait queue is first in, first out: a job
//    whose pinned connection is full (or whose batch spans keys pinned to two connections)
//    holds up the jobs behind it, so no later write of its key overtakes it.
//  - Batches are split by pinned connection (unpinned keys form one more group), then cut
//    into max_batch chunks that never split one key's writes.
//  - A batch that failed as a whole gives each part its own outcome on the same connection:
//    a part whose own statement hit an outage (lock timeout, deadlock) is answered 503; a
//    part whose key has a later write in flight already is answered 503 too (sent again it
//    would commit after that later write); every other part is sent again alone, at once.
//
// The watchdog measures from the front statement's own start (when it became the front of
// its connection's pipeline, or when the last result came back), not from its sending.
//
// Some errors mean the session itself is unusable (read-only server, a plan invalidated by
// DDL, a prepared statement gone, an admin shutdown; the list is recycles_session() in
// pipeline.cpp and docs/operations.md): the connection takes no new work, what is already
// in its pipeline runs to its real outcome, then it closes and a new one is opened.
//
// Structure (Boost.MySQL's split: sans-io state machines under a thin I/O driver):
//  - result.hpp: parameters and results;
//  - connector.hpp: the host/hostaddr/port lists handed to libpq, which hosts need an
//    Asio lookup, the back-off between attempts;
//  - pipeline.hpp: one connection's FIFO of sent jobs; it turns libpq's results
//    (rows, error, PGRES_PIPELINE_ABORTED, PGRES_PIPELINE_SYNC) into completed jobs,
//    decides recycling and the watchdog's start, and settles a failed batch's parts;
//  - batcher.hpp and key_pins.hpp: where a job may go, and how one turn's writes are cut
//    into batches;
//  - pool.cpp: the I/O driver (sockets, resolve and PQconnectPoll on Asio, timers) and the
//    pool itself (dispatch, the wait queue, deadlines, gauges).
// All but pool.cpp are pure and unit-tested without a server (tests/unit/pg/).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include "neptun/net/completion.hpp"
#include "neptun/pg/options.hpp"
#include "neptun/pg/result.hpp"

namespace neptun::pg {

namespace asio = boost::asio;

struct statement {
    std::string name;  // prepared statement name
    std::string sql;
    // Writes that may share a transaction with others that arrive at the same time (one
    // commit, one WAL flush for all of them). Each must touch only the row named by its key.
    bool batchable = false;
};

class pool {
  public:
    pool(asio::io_context& ioc, options opts, std::vector<statement> statements);
    ~pool();
    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    void start();
    void stop();
    unsigned ready_connections() const;

    // Runs statement `index` with `params` (which must stay valid until completion) and
    // completes on the pool's thread. Gives up with `unavailable` at `deadline` if it was
    // not sent by then; once sent, it completes when its outcome is known (see above).
    // `key` (the row id; 0: none) orders writes: statements with the same key run on one
    // connection in arrival order, and batches lock rows in key order, so two batches
    // cannot deadlock.
    template <typename Token = asio::use_awaitable_t<>>
    auto async_execute(std::size_t index, std::span<const param> params, clock::time_point deadline,
                       std::int64_t key = 0, Token&& token = {}) {
        return asio::async_initiate<Token, void(result)>(
            [this](auto handler, std::size_t i, std::span<const param> p, clock::time_point d,
                   std::int64_t k) {
                submit(i, p, d, k, net::completion<result>(std::move(handler)));
            },
            token, index, params, deadline, key);
    }

    struct impl;

  private:
    void submit(std::size_t index, std::span<const param> params, clock::time_point deadline,
                std::int64_t key, net::completion<result> handler);
    std::shared_ptr<impl> impl_;
};

}  // namespace neptun::pg
