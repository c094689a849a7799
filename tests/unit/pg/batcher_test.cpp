// The batcher and pinned_to(): how one turn's writes become batches (by pinned connection,
// in key order, max_batch, one key's writes never split) and where a job may go -- no server.
#include <boost/test/unit_test.hpp>

#include <memory>
#include <string>
#include <vector>

#include "neptun/pg/batcher.hpp"

namespace pg = neptun::pg;
using namespace std::chrono_literals;

namespace {

const pg::clock::time_point t0 = pg::clock::time_point{} + 1h;

std::unique_ptr<pg::job> write(std::int64_t key, std::size_t tag = 0,
                               pg::clock::time_point deadline = t0 + 5s) {
    auto j = std::make_unique<pg::job>();
    j->key = key;
    j->stmt = tag;  // stands for the arrival order
    j->deadline = deadline;
    return j;
}

// "k/tag" of a single job, "[k/tag k/tag ...]" of a batch.
std::string describe(const pg::job& j) {
    auto one = [](const pg::job& x) {
        return std::to_string(x.key) + "/" + std::to_string(x.stmt);
    };
    if (j.parts.empty()) return one(j);
    std::string s = "[";
    for (const auto& p : j.parts) s += (s.size() > 1 ? " " : "") + one(*p);
    return s + "]";
}

std::vector<std::string> cut(pg::batcher& b, const pg::key_pins& pins, unsigned conns) {
    std::vector<std::string> out;
    for (auto& j : b.cut(pins, conns)) out.push_back(describe(*j));
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pg_batcher)

BOOST_AUTO_TEST_CASE(writes_are_sorted_by_key_and_cut_into_max_batch_chunks) {
    pg::batcher b(3);
    pg::key_pins pins;
    BOOST_TEST(b.add(write(5, 0)));  // the first of the turn: the caller schedules a cut
    BOOST_TEST(!b.add(write(2, 1)));
    for (std::int64_t k : {9, 1, 7, 3, 4}) b.add(write(k, static_cast<std::size_t>(k) * 10));
    auto got = cut(b, pins, 2);
    BOOST_TEST((got == std::vector<std::string>{"[1/10 2/1 3/30]", "[4/40 5/0 7/70]", "9/90"}));
    BOOST_TEST(b.empty());
    BOOST_TEST(cut(b, pins, 2).empty());
}

BOOST_AUTO_TEST_CASE(one_keys_writes_stay_in_one_chunk_in_arrival_order) {
    pg::batcher b(2);
    pg::key_pins pins;
    b.add(write(4, 0));
    b.add(write(1, 1));
    b.add(write(4, 2));
    b.add(write(4, 3));
    b.add(write(6, 4));
    // [1 4] would split key 4's writes: the chunk stretches to all of them.
    auto got = cut(b, pins, 1);
    BOOST_TEST((got == std::vector<std::string>{"[1/1 4/0 4/2 4/3]", "6/4"}));
}

BOOST_AUTO_TEST_CASE(writes_are_split_by_the_connection_their_key_is_pinned_to) {
    pg::batcher b(64);
    pg::key_pins pins;
    pins.pin(2, 1);  // key 2 has a write in flight on connection 1
    pins.pin(8, 1);
    pins.pin(5, 0);
    for (std::int64_t k : {8, 1, 5, 2, 7, 3}) b.add(write(k, static_cast<std::size_t>(k)));
    // Connection 0's keys, then connection 1's, then the free ones: no batch needs two.
    auto got = cut(b, pins, 2);
    BOOST_TEST((got == std::vector<std::string>{"5/5", "[2/2 8/8]", "[1/1 3/3 7/7]"}));
}

BOOST_AUTO_TEST_CASE(a_batch_gives_up_at_its_earliest_parts_deadline) {
    pg::batcher b(8);
    pg::key_pins pins;
    b.add(write(1, 0, t0 + 3s));
    b.add(write(2, 1, t0 + 1s));
    b.add(write(3, 2, t0 + 2s));
    auto& out = b.cut(pins, 1);
    BOOST_TEST(out.size() == 1u);
    BOOST_TEST(out[0]->parts.size() == 3u);
    BOOST_TEST((out[0]->deadline == t0 + 1s));
    BOOST_TEST(!out[0]->handler);  // a batch has no caller of its own
}

BOOST_AUTO_TEST_CASE(writes_not_yet_cut_are_handed_back_on_stop) {
    pg::batcher b(8);
    b.add(write(1));
    b.add(write(2));
    auto left = b.take_all();
    BOOST_TEST(left.size() == 2u);
    BOOST_TEST(b.empty());
}

BOOST_AUTO_TEST_CASE(a_job_goes_where_its_keys_are_pinned) {
    pg::key_pins pins;
    pins.pin(10, 0);
    pins.pin(20, 1);
    BOOST_TEST(pg::pinned_to(*write(10), pins) == 0u);
    BOOST_TEST(pg::pinned_to(*write(20), pins) == 1u);
    BOOST_TEST(pg::pinned_to(*write(30), pins) == pg::key_pins::none);
    BOOST_TEST(pg::pinned_to(*write(0), pins) == pg::key_pins::none);  // no key: anywhere

    auto batch = [](std::vector<std::int64_t> keys) {
        auto j = std::make_unique<pg::job>();
        for (auto k : keys) j->parts.push_back(write(k));
        return j;
    };
    BOOST_TEST(pg::pinned_to(*batch({10, 30, 10}), pins) == 0u);
    BOOST_TEST(pg::pinned_to(*batch({30, 40}), pins) == pg::key_pins::none);
    // Keys on two connections: it waits until one of them drains.
    BOOST_TEST(pg::pinned_to(*batch({10, 20}), pins) == pg::pin_conflict);
    pins.unpin(20);
    BOOST_TEST(pg::pinned_to(*batch({10, 20}), pins) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
