// key_pins: which connection holds each key's in-flight writes (the pool's "one order per
// project"), checked against a plain std::map model.
#include <boost/test/unit_test.hpp>

#include <map>
#include <random>

#include "neptun/pg/key_pins.hpp"

using neptun::pg::key_pins;

BOOST_AUTO_TEST_SUITE(pg_key_pins)

BOOST_AUTO_TEST_CASE(a_key_stays_on_its_connection_until_its_last_write_finishes) {
    key_pins p;
    BOOST_TEST(p.find(7) == key_pins::none);
    p.pin(7, 1);
    p.pin(7, 1);
    BOOST_TEST(p.find(7) == 1u);
    BOOST_TEST(p.count(7) == 2u);
    p.unpin(7);
    BOOST_TEST(p.find(7) == 1u);
    p.unpin(7);
    BOOST_TEST(p.find(7) == key_pins::none);
    BOOST_TEST(p.size() == 0u);
    p.pin(7, 0);  // free again: any connection may take it
    BOOST_TEST(p.find(7) == 0u);
    p.unpin(12345);  // never pinned: no effect
    BOOST_TEST(p.size() == 1u);
}

BOOST_AUTO_TEST_CASE(colliding_keys_survive_deletions_and_growth) {
    key_pins p(16);
    std::map<std::int64_t, std::pair<unsigned, unsigned>> model;  // key -> conn, count
    std::mt19937 rng(12);
    std::uniform_int_distribution<std::int64_t> key(1, 300);
    for (int step = 0; step < 200000; ++step) {
        auto k = key(rng);
        auto it = model.find(k);
        if (it == model.end() || rng() % 2) {
            unsigned conn = it == model.end() ? static_cast<unsigned>(rng() % 4) : it->second.first;
            p.pin(k, conn);
            auto& m = model[k];
            m.first = conn;
            ++m.second;
        } else {
            p.unpin(k);
            if (--it->second.second == 0) model.erase(it);
        }
        if (step % 997 == 0) {
            BOOST_REQUIRE(p.size() == model.size());
            for (std::int64_t q = 1; q <= 300; ++q) {
                auto mi = model.find(q);
                BOOST_REQUIRE(p.find(q) == (mi == model.end() ? key_pins::none : mi->second.first));
                BOOST_REQUIRE(p.count(q) == (mi == model.end() ? 0u : mi->second.second));
            }
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
