// The Redis connection's decisions without a network: handshake before readiness, replies
// matched in order, callers that gave up, the health PING, back-off, Sentinel replies.
#include <boost/test/unit_test.hpp>

#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "neptun/redis/protocol.hpp"

using namespace neptun::redis;
using namespace std::chrono_literals;

namespace {

struct harness {
    explicit harness(connection_options o = {}) : m(std::move(o)) {}
    connection_machine m;
    clock::time_point now = clock::time_point{} + 1h;
    std::vector<std::pair<int, reply>> answered;

    std::string output() {
        std::string out;
        m.take_output(out);
        return out;
    }
    void feed(std::string_view bytes) { m.on_bytes(bytes.data(), bytes.size(), now); }
    void get(int id, std::string_view key, std::chrono::milliseconds timeout = 1000ms) {
        std::string_view args[] = {"GET", key};
        m.submit(args, now + timeout, neptun::net::completion<reply>([this, id](reply r) {
                     answered.emplace_back(id, std::move(r));
                 }),
                 now);
        collect();
    }
    void collect() {
        m.deliver([](neptun::net::completion<reply> h, reply r, clock::time_point) {
            std::move(h)(std::move(r));
        });
    }
    void advance(std::chrono::milliseconds d) {
        now += d;
        m.on_timer(now);
        collect();
    }
    void open_ready() {
        m.on_open(now);
        output();
        feed("+PONG\r\n");
        BOOST_REQUIRE(m.ready());
    }
};

std::string resp(std::initializer_list<std::string_view> args) {
    std::string out;
    append_command(out, args);
    return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_protocol)

BOOST_AUTO_TEST_CASE(commands_are_resp_arrays_of_bulk_strings) {
    BOOST_TEST(resp({"GET", "k"}) == "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    BOOST_TEST(resp({"SET", "", "a\r\nb"}) == "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$4\r\na\r\nb\r\n");
}

BOOST_AUTO_TEST_CASE(ready_only_after_auth_select_and_ping_answer) {
    connection_options o;
    o.auth = true;
    o.username = "app";
    o.password = "pw";
    o.db = 3;
    harness h(o);
    h.m.on_open(h.now);
    BOOST_TEST(h.output() == resp({"AUTH", "app", "pw"}) + resp({"SELECT", "3"}) + resp({"PING"}));
    BOOST_TEST(!h.m.ready());
    h.get(1, "k");  // before the handshake answers: at once, unavailable
    BOOST_REQUIRE(h.answered.size() == 1u);
    BOOST_TEST((h.answered[0].second.type == reply::kind::unavailable));
    BOOST_TEST(!h.m.has_output());
    h.feed("+OK\r\n+OK\r\n");
    BOOST_TEST(!h.m.ready());
    h.feed("+PONG\r\n");
    BOOST_TEST(h.m.ready());
    BOOST_TEST(!h.m.must_drop());
}

BOOST_AUTO_TEST_CASE(empty_password_with_a_user_is_still_sent) {
    connection_options o;
    o.auth = true;
    o.username = "app";
    harness h(o);
    h.m.on_open(h.now);
    BOOST_TEST(h.output() == resp({"AUTH", "app", ""}) + resp({"PING"}));
}

BOOST_AUTO_TEST_CASE(loading_is_not_ready_and_backoff_grows_until_a_good_reply) {
    harness h;
    std::mt19937 rng(1);
    h.m.retry().min = 50ms;
    h.m.retry().max = 2000ms;
    for (unsigned attempt = 1; attempt <= 8; ++attempt) {
        h.m.on_open(h.now);
        h.output();
        h.feed("-LOADING Redis is loading the dataset in memory\r\n");
        BOOST_TEST(!h.m.ready());
        BOOST_REQUIRE(h.m.must_drop());
        BOOST_TEST(h.m.handshake_error() == "LOADING");
        h.m.on_close();
        BOOST_TEST(h.m.retry().failures == attempt);
        auto base = std::min<long>(2000, 50L << attempt);
        for (int i = 0; i < 20; ++i) {
            auto d = h.m.retry().next(rng).count();
            BOOST_TEST(d >= base / 2);
            BOOST_TEST(d <= base);
        }
    }
    // A connection that closes before answering anything counts the same.
    h.m.on_open(h.now);
    h.m.on_close();
    BOOST_TEST(h.m.retry().failures == 9u);
    // Only the handshake's answer resets it.
    h.open_ready();
    BOOST_TEST(h.m.retry().failures == 0u);
    h.m.on_close();  // a ready connection lost: the next attempt comes soon
    BOOST_TEST(h.m.retry().failures == 0u);
    BOOST_TEST(h.m.retry().next(rng).count() <= 50);
}

BOOST_AUTO_TEST_CASE(auth_error_is_kept_to_its_first_word) {
    connection_options o;
    o.auth = true;
    o.password = "secret";
    harness h(o);
    h.m.on_open(h.now);
    h.output();
    h.feed("-WRONGPASS invalid username-password pair or user is disabled.\r\n+PONG\r\n");
    BOOST_TEST(!h.m.ready());
    BOOST_TEST(h.m.handshake_error() == "WRONGPASS");
    BOOST_TEST(*h.m.must_drop() == "AUTH failed: WRONGPASS");
}

BOOST_AUTO_TEST_CASE(handshake_that_never_answers_times_out) {
    connection_options o;
    o.handshake_timeout = 500ms;
    harness h(o);
    h.m.on_open(h.now);
    BOOST_TEST((h.m.next_timer() == h.now + 500ms));
    h.advance(499ms);
    BOOST_TEST(!h.m.must_drop());
    h.advance(1ms);
    BOOST_REQUIRE(h.m.must_drop());
    BOOST_TEST(*h.m.must_drop() == "handshake timed out");
}

BOOST_AUTO_TEST_CASE(replies_are_matched_in_order) {
    harness h;
    h.open_ready();
    h.get(1, "a");
    h.get(2, "b");
    h.get(3, "c");
    BOOST_TEST(h.output() == resp({"GET", "a"}) + resp({"GET", "b"}) + resp({"GET", "c"}));
    h.feed("$2\r\nva\r\n$-1\r\n-WRONGTYPE Operation against a key holding the wrong kind\r\n");
    h.collect();
    BOOST_REQUIRE(h.answered.size() == 3u);
    BOOST_TEST(h.answered[0].first == 1);
    BOOST_TEST((h.answered[0].second.type == reply::kind::string));
    BOOST_TEST(h.answered[0].second.value == "va");
    BOOST_TEST((h.answered[1].second.type == reply::kind::nil));
    BOOST_TEST((h.answered[2].second.type == reply::kind::error));
    BOOST_TEST(h.answered[2].second.value == "WRONGTYPE");
}

BOOST_AUTO_TEST_CASE(error_text_after_the_first_word_is_never_kept) {
    harness h;
    h.open_ready();
    h.get(1, "neptun:session:tok-secret");
    h.feed(
        "-ERR unknown command 'XGET', with args beginning with: 'neptun:session:tok-secret'\r\n");
    h.collect();
    BOOST_REQUIRE(h.answered.size() == 1u);
    BOOST_TEST(h.answered[0].second.value == "ERR");
    BOOST_TEST(error_word("NOAUTH Authentication required.") == "NOAUTH");
}

BOOST_AUTO_TEST_CASE(a_caller_that_gave_up_does_not_cost_the_others_their_answers) {
    harness h;
    h.open_ready();
    h.get(1, "slow", 300ms);
    h.advance(200ms);
    h.get(2, "next", 300ms);  // deadline at 500 ms
    BOOST_TEST((h.m.next_timer() == h.now + 100ms));
    h.advance(100ms);  // the first caller's deadline
    BOOST_REQUIRE(h.answered.size() == 1u);
    BOOST_TEST(h.answered[0].first == 1);
    BOOST_TEST((h.answered[0].second.type == reply::kind::unavailable));
    BOOST_TEST(h.m.stats().timeouts == 1u);
    h.now += 100ms;  // the slow reply arrives, and the next one behind it
    h.feed("$4\r\nlate\r\n$4\r\nmine\r\n");
    h.collect();
    BOOST_TEST(!h.m.must_drop());
    BOOST_REQUIRE(h.answered.size() == 2u);
    BOOST_TEST(h.answered[1].first == 2);
    BOOST_TEST(h.answered[1].second.value == "mine");
    BOOST_TEST(h.m.stats().late_replies == 1u);
    BOOST_TEST(h.m.waiting() == 0u);
}

BOOST_AUTO_TEST_CASE(deadlines_out_of_queue_order_expire_each_at_its_own_time) {
    harness h;
    h.open_ready();
    h.get(1, "a", 900ms);
    h.get(2, "b", 100ms);  // behind 1 in the queue, due first
    h.get(3, "c", 500ms);
    BOOST_TEST((h.m.next_timer() == h.now + 100ms));
    h.advance(100ms);
    BOOST_REQUIRE(h.answered.size() == 1u);
    BOOST_TEST(h.answered[0].first == 2);
    h.feed("$1\r\nA\r\n");  // 1 answered by its reply; its deadline must not fire later
    h.collect();
    BOOST_REQUIRE(h.answered.size() == 2u);
    BOOST_TEST(h.answered[1].first == 1);
    BOOST_TEST(h.answered[1].second.value == "A");
    BOOST_TEST((h.m.next_timer() == h.now + 400ms));
    h.advance(400ms);
    BOOST_REQUIRE(h.answered.size() == 3u);
    BOOST_TEST(h.answered[2].first == 3);
    BOOST_TEST((h.answered[2].second.type == reply::kind::unavailable));
    h.advance(400ms);  // 1's old deadline passes: nothing more
    BOOST_TEST(h.answered.size() == 3u);
    BOOST_TEST(h.m.stats().timeouts == 2u);
}

BOOST_AUTO_TEST_CASE(callers_beyond_max_waiting_are_answered_unavailable_at_once) {
    connection_options o;
    o.max_waiting = 2;
    harness h(o);
    h.open_ready();
    h.get(1, "a");
    h.get(2, "b");
    h.get(3, "c");
    BOOST_REQUIRE(h.answered.size() == 1u);
    BOOST_TEST(h.answered[0].first == 3);
    BOOST_TEST((h.answered[0].second.type == reply::kind::unavailable));
    BOOST_TEST(h.m.waiting() == 2u);
    h.feed("$1\r\nA\r\n");
    h.get(4, "d");  // room again
    BOOST_TEST(h.m.waiting() == 2u);
    BOOST_TEST(h.answered.size() == 2u);
}

BOOST_AUTO_TEST_CASE(the_health_ping_drops_a_connection_whose_replies_stopped) {
    connection_options o;
    o.health_interval = 1000ms;
    o.health_timeout = 700ms;
    harness h(o);
    h.open_ready();
    BOOST_TEST((h.m.next_timer() == h.now + 1000ms));
    h.advance(1000ms);
    BOOST_TEST(h.output() == resp({"PING"}));
    h.feed("+PONG\r\n");
    BOOST_TEST(!h.m.must_drop());
    h.advance(1000ms);
    BOOST_TEST(h.output() == resp({"PING"}));
    h.get(1, "k", 300ms);
    h.advance(300ms);
    BOOST_TEST(h.answered.size() == 1u);  // the caller answered at its deadline...
    BOOST_TEST(!h.m.must_drop());         // ...but that alone drops nothing
    h.advance(399ms);
    BOOST_TEST(!h.m.must_drop());
    h.advance(1ms);
    BOOST_REQUIRE(h.m.must_drop());
    BOOST_TEST(*h.m.must_drop() == "health check timed out");
    BOOST_TEST(h.m.stats().health_timeouts == 1u);
}

BOOST_AUTO_TEST_CASE(closing_answers_every_waiting_caller_unavailable) {
    harness h;
    h.open_ready();
    h.get(1, "a");
    h.get(2, "b");
    h.m.on_close();
    h.collect();
    BOOST_REQUIRE(h.answered.size() == 2u);
    for (auto& [id, r] : h.answered) BOOST_TEST((r.type == reply::kind::unavailable));
    BOOST_TEST(!h.m.ready());
}

BOOST_AUTO_TEST_CASE(a_reply_nobody_asked_for_drops_the_connection) {
    harness h;
    h.open_ready();
    h.feed("+OK\r\n");
    BOOST_REQUIRE(h.m.must_drop());
    BOOST_TEST(*h.m.must_drop() == "unexpected reply");
    harness g;
    g.open_ready();
    g.get(1, "a");
    g.feed("?garbage\r\n");
    BOOST_REQUIRE(g.m.must_drop());
    BOOST_TEST(*g.m.must_drop() == "protocol error");
}

BOOST_AUTO_TEST_CASE(sentinel_mode_checks_role_before_ready) {
    connection_options o;
    o.check_role_master = true;
    harness h(o);
    h.m.on_open(h.now);
    BOOST_TEST(h.output() == resp({"ROLE"}) + resp({"PING"}));
    h.feed("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:10\r\n+PONG\r\n");
    BOOST_TEST(!h.m.ready());
    BOOST_REQUIRE(h.m.must_drop());
    BOOST_TEST(*h.m.must_drop() == "ROLE is not master");
    h.m.on_close();
    h.m.on_open(h.now);
    h.output();
    h.feed("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n+PONG\r\n");
    BOOST_TEST(h.m.ready());
}

BOOST_AUTO_TEST_CASE(sentinel_replies) {
    resp_reader rr;
    auto parse = [&](std::string_view bytes) {
        rr.feed(bytes.data(), bytes.size());
        bool broken = false;
        auto r = rr.next(broken);
        BOOST_REQUIRE(r);
        return r;
    };
    auto addr = parse_master_addr(*parse("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n"));
    BOOST_REQUIRE(addr);
    BOOST_TEST(addr->first == "127.0.0.1");
    BOOST_TEST(addr->second == 6380u);
    BOOST_TEST(!parse_master_addr(*parse("*-1\r\n")));
    BOOST_TEST(!parse_master_addr(*parse("*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n")));
    std::string msg = "mymaster 127.0.0.1 6380 127.0.0.2 6381";
    std::string push = "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$" +
                       std::to_string(msg.size()) + "\r\n" + msg + "\r\n";
    auto moved = parse_switch_master(*parse(push), "mymaster");
    BOOST_REQUIRE(moved);
    BOOST_TEST(moved->first == "127.0.0.2");
    BOOST_TEST(moved->second == 6381u);
    BOOST_TEST(!parse_switch_master(*parse(push), "other"));
    // The subscription's confirmation is not a move.
    BOOST_TEST(!parse_switch_master(
        *parse("*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"), "mymaster"));
}

BOOST_AUTO_TEST_SUITE_END()
