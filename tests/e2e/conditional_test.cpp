// CONTRACT.md §1.2: ETag on every 200 and 304, If-Match checked in the statement that
// writes (412, nothing written), If-None-Match on GET (304), NEPTUN_REQUIRE_IF_MATCH (428),
// and the lost-update test that shows If-Match is what keeps concurrent increments.
#include <atomic>
#include <regex>
#include <set>
#include <thread>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

const std::string changed = R"({"statusCode":412,"message":"Project has changed"})";
const std::string invalid_if_match =
    "{\"statusCode\":400,\"message\":\"Invalid If-Match header\",\"errors\":[{\"field\":"
    "\"If-Match\",\"message\":\"must be * or a comma-separated list of entity tags "
    "(\\\"...\\\")\"}]}";

struct conditional_fixture {
    conditional_fixture() : srv(base_env()) { BOOST_REQUIRE(srv.wait_ready()); }
    server_process srv;

    http_response get(const seeded_user& u, header_list more = {}) {
        auto r = http_request(srv.port, "GET", u.path(), auth(u, more));
        BOOST_REQUIRE(r);
        return *r;
    }
    http_response patch(const seeded_user& u, const std::string& body, header_list more = {}) {
        auto h = json_auth(u);
        h.insert(h.end(), more.begin(), more.end());
        auto r = http_request(srv.port, "PATCH", u.path(), h, body);
        BOOST_REQUIRE(r);
        return *r;
    }
    static std::string name_of(const seeded_user& u) {
        return stores::project_field(u.project_id, "name");
    }
};

bool is_strong_tag(const std::string& tag) {
    static const std::regex form("\"[0-9a-f]{32}\"");
    return std::regex_match(tag, form);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(conditional, conditional_fixture)

BOOST_AUTO_TEST_CASE(every_200_carries_a_strong_etag_that_follows_the_representation) {
    auto u = seed_user();
    auto first = get(u);
    BOOST_TEST(first.status == 200);
    BOOST_TEST(is_strong_tag(first.header("ETag")));
    BOOST_TEST(get(u).header("ETag") == first.header("ETag"));  // equal representations

    auto written = patch(u, R"({"name":"renamed"})");
    BOOST_TEST(written.status == 200);
    BOOST_TEST(is_strong_tag(written.header("ETag")));
    BOOST_TEST(written.header("ETag") != first.header("ETag"));
    auto after = get(u);
    BOOST_TEST(after.body == written.body);
    BOOST_TEST(after.header("ETag") == written.header("ETag"));  // one definition of the tag

    // Another project with another representation has another tag.
    auto other = seed_user();
    BOOST_TEST(get(other).header("ETag") != first.header("ETag"));
}

BOOST_AUTO_TEST_CASE(two_tabs_one_wins_the_other_gets_412_with_the_current_etag) {
    auto u = seed_user();
    auto tab_a = get(u).header("ETag");
    auto tab_b = get(u).header("ETag");
    BOOST_REQUIRE(tab_a == tab_b);

    auto a = patch(u, R"({"name":"from tab A"})", {{"If-Match", tab_a}});
    BOOST_TEST(a.status == 200);
    auto b = patch(u, R"({"name":"from tab B"})", {{"If-Match", tab_b}});
    BOOST_TEST(b.status == 412);
    BOOST_TEST(b.header("Content-Type") == "application/json");
    BOOST_TEST(b.body == changed);
    BOOST_TEST(b.header("ETag") == a.header("ETag"));
    BOOST_TEST(name_of(u) == "from tab A");

    // Tab B reloads and tries again with the tag it was told.
    auto retry = patch(u, R"({"name":"from tab B"})", {{"If-Match", b.header("ETag")}});
    BOOST_TEST(retry.status == 200);
    BOOST_TEST(name_of(u) == "from tab B");
}

BOOST_AUTO_TEST_CASE(if_match_forms) {
    auto u = seed_user();
    auto current = get(u).header("ETag");
    const std::string stale = "\"00000000000000000000000000000000\"";

    auto star = patch(u, R"({"description":"star"})", {{"If-Match", "*"}});
    BOOST_TEST(star.status == 200);
    current = star.header("ETag");

    auto listed =
        patch(u, R"({"description":"list"})", {{"If-Match", stale + ", " + current + ",\"x\""}});
    BOOST_TEST(listed.status == 200);
    current = listed.header("ETag");

    // A weak tag never matches for If-Match, even with the current opaque value.
    auto weak = patch(u, R"({"description":"weak"})", {{"If-Match", "W/" + current}});
    BOOST_TEST(weak.status == 412);
    BOOST_TEST(weak.header("ETag") == current);

    // Several If-Match fields are one list.
    auto fields =
        patch(u, R"({"description":"fields"})", {{"If-Match", stale}, {"If-Match", current}});
    BOOST_TEST(fields.status == 200);
    current = fields.header("ETag");

    auto missing = patch(u, R"({"description":"stale"})", {{"If-Match", stale}});
    BOOST_TEST(missing.status == 412);
    BOOST_TEST(missing.body == changed);
    BOOST_TEST(stores::project_field(u.project_id, "description") == "fields");

    // A tag the server never makes (here bytes that are not UTF-8) simply does not match.
    auto foreign = patch(u, R"({"description":"foreign"})", {{"If-Match", "\"\xff\xfe\""}});
    BOOST_TEST(foreign.status == 412);
    BOOST_TEST(foreign.header("ETag") == current);

    for (const std::string& bad :
         std::vector<std::string>{"abc", "\"unterminated", "*, " + current, "", "W/abc"}) {
        BOOST_TEST_CONTEXT("If-Match: " << bad) {
            auto r = patch(u, R"({"description":"bad"})", {{"If-Match", bad}});
            BOOST_TEST(r.status == 400);
            BOOST_TEST(r.body == invalid_if_match);
        }
    }
    BOOST_TEST(stores::project_field(u.project_id, "description") == "fields");
}

BOOST_AUTO_TEST_CASE(absent_or_foreign_projects_are_404_whatever_the_precondition) {
    auto u = seed_user();
    auto other = seed_user();
    auto tag = get(u).header("ETag");
    const std::string not_found = R"({"statusCode":404,"message":"Project not found"})";
    seeded_user absent = u;
    absent.project_id = 2147483647;
    seeded_user foreign = u;
    foreign.project_id = other.project_id;
    for (const auto* target : {&absent, &foreign}) {
        for (const std::string& condition : std::vector<std::string>{std::string("*"), tag}) {
            auto r = patch(*target, R"({"name":"x"})", {{"If-Match", condition}});
            BOOST_TEST(r.status == 404);
            BOOST_TEST(r.body == not_found);
            BOOST_TEST(!r.has_header("ETag"));
        }
    }
    BOOST_TEST(name_of(other) == "Project of " + std::to_string(other.user_id));
}

BOOST_AUTO_TEST_CASE(if_none_match_on_get_is_304_with_the_etag_and_no_body) {
    auto u = seed_user();
    auto tag = get(u).header("ETag");
    for (const std::string& condition : {tag, "W/" + tag, "\"nope\", " + tag, std::string("*")}) {
        BOOST_TEST_CONTEXT("If-None-Match: " << condition) {
            auto r = get(u, {{"If-None-Match", condition}});
            BOOST_TEST(r.status == 304);
            BOOST_TEST(r.header("ETag") == tag);
            BOOST_TEST(r.body.empty());
            BOOST_TEST(!r.has_header("Content-Length"));
        }
    }
    auto stale = get(u, {{"If-None-Match", "\"nope\""}});
    BOOST_TEST(stale.status == 200);
    BOOST_TEST(stale.header("ETag") == tag);
    auto bad = get(u, {{"If-None-Match", "nope"}});
    BOOST_TEST(bad.status == 400);
    BOOST_TEST(bad.body ==
               "{\"statusCode\":400,\"message\":\"Invalid If-None-Match header\",\"errors\":[{"
               "\"field\":\"If-None-Match\",\"message\":\"must be * or a comma-separated list of "
               "entity tags (\\\"...\\\")\"}]}");
    // The check order still holds: no session is a 401 whatever the precondition.
    auto anonymous = http_request(srv.port, "GET", u.path(), {{"If-None-Match", tag}});
    BOOST_REQUIRE(anonymous);
    BOOST_TEST(anonymous->status == 401);
}

BOOST_AUTO_TEST_CASE(the_304_connection_stays_usable) {
    auto u = seed_user();
    auto tag = get(u).header("ETag");
    http_connection c(srv.port);
    c.send(build_request("GET", u.path(), auth(u, {{"If-None-Match", tag}})) +
           build_request("GET", u.path(), auth(u)));
    auto first = c.read_response();
    BOOST_REQUIRE(first);
    BOOST_TEST(first->status == 304);
    auto second = c.read_response();
    BOOST_REQUIRE(second);
    BOOST_TEST(second->status == 200);
    BOOST_TEST(second->header("ETag") == tag);
}

BOOST_AUTO_TEST_CASE(an_etag_differs_for_every_write_even_within_one_batch) {
    // Concurrent PATCHes of one project share batches (one transaction, one now()); each
    // answer's tag must still be that of the representation it returned.
    auto u = seed_user();
    constexpr int writers = 16;
    std::vector<std::thread> threads;
    std::vector<http_response> answers(writers);
    for (int i = 0; i < writers; ++i)
        threads.emplace_back([&, i] {
            auto r = http_request(srv.port, "PATCH", u.path(), json_auth(u),
                                  R"({"name":"writer )" + std::to_string(i) + "\"}");
            if (r) answers[static_cast<std::size_t>(i)] = *r;
        });
    for (auto& t : threads) t.join();
    std::set<std::string> tags;
    for (const auto& a : answers) {
        BOOST_TEST(a.status == 200);
        tags.insert(a.header("ETag"));
    }
    BOOST_TEST(tags.size() == static_cast<std::size_t>(writers));
    auto now = get(u);
    int matching = 0;
    for (const auto& a : answers) matching += a.header("ETag") == now.header("ETag");
    BOOST_TEST(matching == 1);  // the last writer's answer is what is stored
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// Read-modify-write of a counter kept in `description` by `clients` clients, each until it
// has made `increments` increments count; returns the final counter.
long run_increments(std::uint16_t port, const seeded_user& u, int clients, int increments,
                    bool with_if_match, std::atomic<long>& conflicts) {
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int c = 0; c < clients; ++c)
        threads.emplace_back([&] {
            http_connection conn(port);
            auto round_trip = [&](const std::string& bytes) {
                conn.send(bytes);
                return conn.read_response();
            };
            for (int done = 0; done < increments && failures == 0;) {
                auto read = round_trip(build_request("GET", u.path(), auth(u)));
                if (!read || read->status != 200) {
                    ++failures;
                    return;
                }
                auto at = read->body.find("\"description\":\"");
                long value = at == std::string::npos ? 0 : std::stol(read->body.substr(at + 15));
                header_list h = json_auth(u);
                if (with_if_match) h.push_back({"If-Match", read->header("ETag")});
                auto write = round_trip(
                    build_request("PATCH", u.path(), h,
                                  R"({"description":")" + std::to_string(value + 1) + "\"}"));
                if (!write) {
                    ++failures;
                    return;
                }
                if (write->status == 412) {
                    ++conflicts;
                    continue;
                }
                if (write->status != 200) {
                    ++failures;
                    return;
                }
                ++done;
            }
        });
    for (auto& t : threads) t.join();
    BOOST_TEST(failures.load() == 0);
    return std::stol(stores::project_field(u.project_id, "description"));
}

// A server with batching on and a project whose description is the counter 0.
struct counter_fixture {
    counter_fixture() : srv(base_env({{"NEPTUN_PG_BATCH", "on"}})), u(seed_user()) {
        BOOST_REQUIRE(srv.wait_ready());
        stores::psql("UPDATE neptun_user_project SET description = '0' WHERE id = " +
                     std::to_string(u.project_id));
    }
    server_process srv;
    seeded_user u;
    std::atomic<long> conflicts{0};
};

}  // namespace

BOOST_AUTO_TEST_SUITE(lost_updates)

BOOST_FIXTURE_TEST_CASE(if_match_keeps_every_increment_of_32_concurrent_clients, counter_fixture) {
    BOOST_TEST(run_increments(srv.port, u, 32, 50, true, conflicts) == 1600);
    BOOST_TEST(conflicts.load() > 0);  // they did race
    BOOST_TEST_MESSAGE("412 retries: " << conflicts.load());
}

BOOST_FIXTURE_TEST_CASE(without_if_match_the_same_clients_lose_increments, counter_fixture) {
    auto final_value = run_increments(srv.port, u, 32, 50, false, conflicts);
    BOOST_TEST(conflicts.load() == 0);
    BOOST_TEST(final_value < 1600);
    BOOST_TEST_MESSAGE("counter without If-Match: " << final_value << " of 1600");
}

BOOST_AUTO_TEST_CASE(require_if_match_answers_428_after_the_body_checks) {
    server_process srv(base_env({{"NEPTUN_REQUIRE_IF_MATCH", "on"}}));
    BOOST_REQUIRE(srv.wait_ready());
    auto u = seed_user();
    auto bare = http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":"x"})");
    BOOST_REQUIRE(bare);
    BOOST_TEST(bare->status == 428);
    BOOST_TEST(bare->body == R"({"statusCode":428,"message":"If-Match required"})");
    auto invalid = http_request(srv.port, "PATCH", u.path(), json_auth(u), R"({"name":1})");
    BOOST_REQUIRE(invalid);
    BOOST_TEST(invalid->status == 400);  // the body is checked first
    auto h = json_auth(u);
    h.push_back({"If-Match", "*"});
    auto starred = http_request(srv.port, "PATCH", u.path(), h, R"({"name":"with star"})");
    BOOST_REQUIRE(starred);
    BOOST_TEST(starred->status == 200);
    auto get = http_request(srv.port, "GET", u.path(), auth(u));
    BOOST_REQUIRE(get);
    BOOST_TEST(get->status == 200);  // GET needs no precondition
    BOOST_TEST(stores::project_field(u.project_id, "name") == "with star");
}

BOOST_AUTO_TEST_SUITE_END()
