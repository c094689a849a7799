// The session cache's rules without Redis: tickets voided by what happens before the fetch
// completes, TTL and max age, bounds, and the invalidation pushes as Redis sends them.
#include <boost/test/unit_test.hpp>

#include <hiredis/hiredis.h>

#include <string>

#include "neptun/redis/protocol.hpp"
#include "neptun/redis/session_cache.hpp"

using namespace neptun::redis;
using namespace std::chrono_literals;

namespace {

using clock = session_cache::clock;
const clock::time_point t0 = clock::time_point{} + 1h;

struct usable_cache : session_cache {
    explicit usable_cache(session_cache_options o = {}) : session_cache(o) { set_usable(true); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(session_cache_rules)

BOOST_AUTO_TEST_CASE(nothing_is_cached_or_found_until_tracking_is_confirmed) {
    session_cache c({});
    BOOST_TEST(!c.begin(t0).has_value());
    BOOST_TEST(!c.find("tok", t0).has_value());
    c.set_usable(true);
    auto t = c.begin(t0);
    BOOST_REQUIRE(t.has_value());
    BOOST_TEST(c.offer(*t, "tok", 42, 60000));
    BOOST_TEST(c.find("tok", t0 + 1s).value_or(0) == 42);
    c.set_usable(false);  // tracking lost: flushed and not used
    BOOST_TEST(c.entries() == 0u);
    BOOST_TEST(!c.find("tok", t0 + 1s).has_value());
}

BOOST_AUTO_TEST_CASE(an_invalidation_before_the_reply_voids_the_ticket) {
    usable_cache c;
    auto t = *c.begin(t0);
    c.invalidate("tok");  // overtook the GET's reply
    BOOST_TEST(!c.offer(t, "tok", 42, 60000));
    BOOST_TEST(c.entries() == 0u);
    // Another token's invalidation does not void it.
    auto t2 = *c.begin(t0);
    c.invalidate("other");
    BOOST_TEST(c.offer(t2, "tok", 42, 60000));
}

BOOST_AUTO_TEST_CASE(a_flush_or_a_tracking_change_voids_every_open_ticket) {
    usable_cache c;
    auto a = *c.begin(t0);
    c.flush();
    BOOST_TEST(!c.offer(a, "tok", 1, 60000));
    auto b = *c.begin(t0);
    c.set_usable(true);  // a new invalidation connection confirmed
    BOOST_TEST(!c.offer(b, "tok", 1, 60000));
}

BOOST_AUTO_TEST_CASE(more_invalidations_than_the_ring_holds_void_the_ticket) {
    usable_cache c;
    auto t = *c.begin(t0);
    for (int i = 0; i < 1025; ++i) c.invalidate("x" + std::to_string(i));
    BOOST_TEST(!c.offer(t, "tok", 1, 60000));
    auto fresh = *c.begin(t0);
    for (int i = 0; i < 1024; ++i) c.invalidate("y" + std::to_string(i));
    BOOST_TEST(c.offer(fresh, "tok", 1, 60000));
}

BOOST_AUTO_TEST_CASE(an_invalidation_after_caching_removes_the_entry) {
    usable_cache c;
    BOOST_REQUIRE(c.offer(*c.begin(t0), "tok", 7, 60000));
    c.invalidate("tok");
    BOOST_TEST(!c.find("tok", t0).has_value());
    BOOST_TEST(c.entries() == 0u);
    BOOST_TEST(c.bytes() == 0u);
}

BOOST_AUTO_TEST_CASE(the_ttl_counts_from_the_get_and_the_max_age_caps_it) {
    session_cache_options o;
    o.max_age = 10s;
    usable_cache c(o);
    BOOST_REQUIRE(c.offer(*c.begin(t0), "short", 1, 500));  // PTTL 500 ms
    BOOST_TEST(c.find("short", t0 + 499ms).has_value());
    BOOST_TEST(!c.find("short", t0 + 500ms).has_value());
    BOOST_REQUIRE(c.offer(*c.begin(t0), "forever", 2, -1));  // no TTL: the max age
    BOOST_TEST(c.find("forever", t0 + 9s).has_value());
    BOOST_TEST(!c.find("forever", t0 + 10s).has_value());
    BOOST_REQUIRE(c.offer(*c.begin(t0), "long", 3, 3'600'000));
    BOOST_TEST(!c.find("long", t0 + 10s).has_value());
    BOOST_TEST(!c.offer(*c.begin(t0), "gone", 4, -2));  // the key vanished before PTTL
    BOOST_TEST(!c.offer(*c.begin(t0), "ending", 5, 0));
}

BOOST_AUTO_TEST_CASE(entries_and_bytes_are_bounded_least_recently_used_first) {
    session_cache_options o;
    o.max_entries = 2;
    usable_cache c(o);
    BOOST_REQUIRE(c.offer(*c.begin(t0), "a", 1, 60000));
    BOOST_REQUIRE(c.offer(*c.begin(t0), "b", 2, 60000));
    BOOST_REQUIRE(c.find("a", t0).has_value());  // a is now the most recent
    BOOST_REQUIRE(c.offer(*c.begin(t0), "c", 3, 60000));
    BOOST_TEST(c.entries() == 2u);
    BOOST_TEST(c.find("a", t0).has_value());
    BOOST_TEST(!c.find("b", t0).has_value());
    BOOST_TEST(c.find("c", t0).has_value());

    session_cache_options small;
    small.max_bytes = 500;
    usable_cache d(small);
    std::string big(300, 'x');
    BOOST_REQUIRE(d.offer(*d.begin(t0), big, 1, 60000));
    BOOST_TEST(d.bytes() <= 500u);
    BOOST_REQUIRE(d.offer(*d.begin(t0), std::string(300, 'y'), 2, 60000));
    BOOST_TEST(d.entries() == 1u);  // the first went to make room
    BOOST_TEST(d.bytes() <= 500u);
    BOOST_TEST(!d.offer(*d.begin(t0), std::string(1000, 'z'), 3, 60000));  // never fits
}

BOOST_AUTO_TEST_CASE(an_offer_for_a_cached_token_replaces_it) {
    usable_cache c;
    BOOST_REQUIRE(c.offer(*c.begin(t0), "tok", 1, 60000));
    BOOST_REQUIRE(c.offer(*c.begin(t0), "tok", 2, 60000));
    BOOST_TEST(c.entries() == 1u);
    BOOST_TEST(c.find("tok", t0).value_or(0) == 2);
}

BOOST_AUTO_TEST_CASE(invalidation_pushes_are_parsed_as_redis_sends_them) {
    resp_reader rr;
    std::string bytes =
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*2\r\n$2\r\nk1\r\n$2\r\nk2\r\n"
        "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n"
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n"
        "*3\r\n$7\r\nmessage\r\n$5\r\nother\r\n*1\r\n$2\r\nk3\r\n";
    BOOST_REQUIRE(rr.feed(bytes.data(), bytes.size()));
    bool broken = false;
    auto keys = rr.next(broken);
    BOOST_REQUIRE(keys);
    auto inv = parse_invalidation(*keys);
    BOOST_REQUIRE(inv.has_value());
    BOOST_TEST(!inv->everything);
    BOOST_REQUIRE(inv->keys.size() == 2u);
    BOOST_TEST(inv->keys[0] == "k1");
    BOOST_TEST(inv->keys[1] == "k2");
    auto flush = rr.next(broken);
    BOOST_REQUIRE(flush);
    auto all = parse_invalidation(*flush);
    BOOST_REQUIRE(all.has_value());
    BOOST_TEST(all->everything);
    for (int i = 0; i < 3; ++i) {  // a pong, the subscribe confirmation, another channel
        auto r = rr.next(broken);
        BOOST_REQUIRE(r);
        BOOST_TEST(!parse_invalidation(*r).has_value());
    }
    BOOST_TEST(!broken);
}

BOOST_AUTO_TEST_SUITE_END()
