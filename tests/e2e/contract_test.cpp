// Every row of CONTRACT.md §1 through HTTP, with the database row checked after each write.
#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

struct contract_fixture {
    contract_fixture() : srv(base_env()) { BOOST_REQUIRE(srv.wait_ready()); }
    server_process srv;

    maybe_response get(const std::string& path, header_list h) {
        return http_request(srv.port, "GET", path, h);
    }
    maybe_response patch(const std::string& path, header_list h, const std::string& body) {
        return http_request(srv.port, "PATCH", path, h, body);
    }
    static std::string row(const seeded_user& u) {
        return stores::project_field(u.project_id,
                                     "name, coalesce(description, '<null>'), type, "
                                     "main_language, created_at, updated_at, neptun_user_id");
    }
};

void expect_error(const maybe_response& r, int status, const std::string& body) {
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == status);
    BOOST_TEST(r->header("Content-Type") == "application/json");
    BOOST_TEST(r->body == body);
}

}  // namespace

BOOST_FIXTURE_TEST_SUITE(contract, contract_fixture)

BOOST_AUTO_TEST_CASE(get_returns_the_project) {
    auto u = seed_user();
    auto r = get(u.path(), auth(u));
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    auto created = stores::project_field(
        u.project_id, "to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
    BOOST_TEST(r->body == "{\"project\":{\"id\":" + std::to_string(u.project_id) +
                              ",\"name\":\"Project of " + std::to_string(u.user_id) +
                              "\",\"description\":\"first\",\"project_type\":\"web-site\","
                              "\"programming_language\":\"typescript\",\"created_at\":\"" +
                              created + "\",\"updated_at\":\"" + created +
                              "\",\"neptun_user_id\":" + std::to_string(u.user_id) + "}}");
}

BOOST_AUTO_TEST_CASE(patch_writes_only_the_fields_sent_and_advances_updated_at) {
    auto u = seed_user();
    auto other = seed_user();
    auto before = stores::project_field(u.project_id, "created_at, updated_at");
    auto other_before = row(other);
    auto r = patch(u.path(), json_auth(u),
                   R"({"name":"Updated Project Name","programming_language":"go"})");
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    // The response is the row as written, byte for byte.
    BOOST_TEST(r->body == stores::project_body(u.project_id));
    BOOST_TEST(r->project_field("name") == "Updated Project Name");
    BOOST_TEST(r->project_field("description") == "first");
    BOOST_TEST(r->project_field("project_type") == "web-site");
    BOOST_TEST(r->project_field("programming_language") == "go");
    auto after = stores::psql(
        "SELECT name, description, type, main_language, created_at = '" +
        before.substr(0, before.find('|')) + "', updated_at > '" +
        before.substr(before.find('|') + 1) +
        "', updated_at > (now() AT TIME ZONE 'UTC') - interval '1 minute', neptun_user_id FROM "
        "neptun_user_project WHERE id = " +
        std::to_string(u.project_id));
    BOOST_TEST(after ==
               "Updated Project Name|first|web-site|go|t|t|t|" + std::to_string(u.user_id));
    BOOST_TEST(row(other) == other_before);
    // The response shows the row as written.
    auto updated = stores::project_field(
        u.project_id, "to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
    BOOST_TEST(r->project_field("updated_at") == updated);
}

BOOST_AUTO_TEST_CASE(patch_all_fields_and_null_description) {
    auto u = seed_user();
    auto r = patch(
        u.path(), json_auth(u),
        R"({"name":"N","description":null,"project_type":"web-app","programming_language":"elixir"})");
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(r->body == stores::project_body(u.project_id));
    BOOST_TEST(r->project_field("description") == "null");
    BOOST_TEST(stores::project_field(u.project_id,
                                     "name, coalesce(description, '<null>'), type, "
                                     "main_language") == "N|<null>|web-app|elixir");
    auto d = patch(u.path(), json_auth(u), R"({"description":"x \"quoted\" \u00e9 \n line"})");
    BOOST_REQUIRE(d);
    BOOST_TEST(d->status == 200);
    BOOST_TEST(d->project_field("description") == "x \"quoted\" é \n line");
    BOOST_TEST(d->body.find(R"("description":"x \"quoted\" é \n line")") != std::string::npos);
    BOOST_TEST(d->body == stores::project_body(u.project_id));
}

BOOST_AUTO_TEST_CASE(missing_bad_unknown_and_expired_sessions_are_401) {
    auto u = seed_user();
    const std::string unauthorized = R"({"statusCode":401,"message":"Unauthorized"})";
    expect_error(get(u.path(), {}), 401, unauthorized);
    expect_error(get(u.path(), {{"Cookie", "other=1"}}), 401, unauthorized);
    expect_error(get(u.path(), {{"Cookie", "neptun-session="}}), 401, unauthorized);
    expect_error(get(u.path(), {{"Cookie", "neptun-session=" + std::string(513, 'a')}}), 401,
                 unauthorized);
    expect_error(get(u.path(), {{"Cookie", "neptun-session=unknown-token"}}), 401, unauthorized);
    // Other cookies beside it, in any order, with or without spaces; a quoted value.
    BOOST_TEST(get(u.path(), {{"Cookie", "a=1;" + u.cookie() + ";b=2"}})->status == 200);
    BOOST_TEST(get(u.path(), {{"Cookie", "a=1"}, {"Cookie", u.cookie()}})->status == 200);
    BOOST_TEST(get(u.path(), {{"Cookie", "neptun-session=\"" + u.token + "\""}})->status == 200);
    // Expired (Redis TTL) and unreadable sessions.
    stores::redis({"PEXPIRE", "neptun:session:" + u.token, "1"});
    BOOST_TEST(stores::redis({"EXISTS", "neptun:session:" + u.token}) == "0");
    expect_error(get(u.path(), auth(u)), 401, unauthorized);
    for (auto value :
         {"not json", R"({"user":{}})", R"({"user":{"id":"1"}})", R"({"user":{"id":1.5}})"}) {
        stores::redis({"SET", "neptun:session:" + u.token, value});
        expect_error(get(u.path(), auth(u)), 401, unauthorized);
    }
    stores::redis({"DEL", "neptun:session:" + u.token});
    stores::redis({"HSET", "neptun:session:" + u.token, "user", "1"});
    expect_error(get(u.path(), auth(u)), 401, unauthorized);
}

BOOST_AUTO_TEST_CASE(malformed_ids_are_400_after_authentication) {
    auto u = seed_user();
    for (auto id : {"0", "01", "-1", "+1", "abc", "2147483648", "1.0", "%31"}) {
        auto r = get("/api/users/" + std::string(id) + "/projects/1", auth(u));
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 400, id);
        BOOST_TEST(r->body == R"({"statusCode":400,"message":"Invalid user_id or project_id",)"
                              R"("errors":[{"field":"user_id","message":)"
                              R"("must be an integer from 1 to 2147483647"}]})",
                   id);
        auto p = get("/api/users/" + std::to_string(u.user_id) + "/projects/" + id, auth(u));
        BOOST_REQUIRE(p);
        BOOST_TEST(p->status == 400, id);
        BOOST_TEST(p->body == R"({"statusCode":400,"message":"Invalid user_id or project_id",)"
                              R"("errors":[{"field":"project_id","message":)"
                              R"("must be an integer from 1 to 2147483647"}]})",
                   id);
    }
    // Authentication comes first.
    BOOST_TEST(get("/api/users/abc/projects/1", {})->status == 401);
    BOOST_TEST(get("/api/users/2147483647/projects/2147483647", auth(u))->status == 403);
}

BOOST_AUTO_TEST_CASE(another_users_path_is_403_and_ids_come_first) {
    auto u = seed_user();
    auto other = seed_user();
    expect_error(get(other.path(), auth(u)), 403, R"({"statusCode":403,"message":"Forbidden"})");
    expect_error(patch(other.path(), json_auth(u), R"({"name":"x"})"), 403,
                 R"({"statusCode":403,"message":"Forbidden"})");
    BOOST_TEST(row(other).starts_with("Project of "));
    BOOST_TEST(get("/api/users/0/projects/1", auth(u))->status == 400);
}

BOOST_AUTO_TEST_CASE(accept_must_admit_json_or_406) {
    auto u = seed_user();
    for (auto ok :
         {"application/json", "application/*", "*/*", "text/html, application/json;q=0.1"})
        BOOST_TEST(get(u.path(), auth(u, {{"Accept", ok}}))->status == 200, ok);
    for (auto bad : {"text/html", "application/json;q=0", "application/xml", "*/*;q=0"})
        expect_error(
            get(u.path(), auth(u, {{"Accept", bad}})), 406,
            R"({"statusCode":406,"message":"Not acceptable: this endpoint answers application/json"})");
    // 403 comes before 406.
    auto other = seed_user();
    BOOST_TEST(get(other.path(), auth(u, {{"Accept", "text/html"}}))->status == 403);
}

BOOST_AUTO_TEST_CASE(patch_needs_json_content_type_or_415) {
    auto u = seed_user();
    const std::string body = R"({"name":"ct"})";
    for (auto ok :
         {"application/json", "application/json; charset=utf-8", "APPLICATION/JSON;Charset=UTF-8"})
        BOOST_TEST(patch(u.path(), auth(u, {{"Content-Type", ok}}), body)->status == 200, ok);
    for (auto bad : {"text/plain", "application/x-www-form-urlencoded", "application/jsonx"})
        expect_error(patch(u.path(), auth(u, {{"Content-Type", bad}}), body), 415,
                     R"({"statusCode":415,"message":"Content-Type must be application/json"})");
    expect_error(patch(u.path(), auth(u), body), 415,
                 R"({"statusCode":415,"message":"Content-Type must be application/json"})");
    // 406 comes before 415, and 415 before a bad body.
    BOOST_TEST(
        patch(u.path(), auth(u, {{"Accept", "text/html"}, {"Content-Type", "text/plain"}}), body)
            ->status == 406);
    BOOST_TEST(patch(u.path(), auth(u, {{"Content-Type", "text/plain"}}), "{")->status == 415);
}

BOOST_AUTO_TEST_CASE(bad_bodies_are_400_naming_every_broken_field) {
    auto u = seed_user();
    auto before = row(u);
    auto r = patch(
        u.path(), json_auth(u),
        R"({"name":"  ","description":5,"project_type":"Web-Site","programming_language":"cobol","extra":1})");
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 400);
    for (auto field : {"name", "description", "project_type", "programming_language", "extra"})
        BOOST_TEST(r->body.find("{\"field\":\"" + std::string(field) + "\"") != std::string::npos,
                   field);
    BOOST_TEST(
        r->body.find(
            R"({"field":"project_type","message":"must be one of web-site, web-service, web-app"})") !=
        std::string::npos);
    for (auto body : {"", "{", "[]", "{}", "null", R"({"name":"a","name":"b"})",
                      "{\"name\":\"\xff\"}", R"({"name":"a\u0000b"})", R"({"name":"\ud800"})"}) {
        auto b = patch(u.path(), json_auth(u), body);
        BOOST_REQUIRE(b);
        BOOST_TEST(b->status == 400, body);
        BOOST_TEST(
            b->body.starts_with(R"({"statusCode":400,"message":"Invalid request body","errors":[)"),
            body);
    }
    std::string name255, name256;
    for (int i = 0; i < 255; ++i) name255 += "\xc3\xa9";
    name256 = name255 + "e";
    BOOST_TEST(patch(u.path(), json_auth(u), R"({"name":")" + name256 + R"("})")->status == 400);
    BOOST_TEST(row(u) == before);
    BOOST_TEST(patch(u.path(), json_auth(u), R"({"name":")" + name255 + R"("})")->status == 200);
    std::string d10000(10000, 'd');
    BOOST_TEST(patch(u.path(), json_auth(u), R"({"description":")" + d10000 + "x\"}")->status ==
               400);
    BOOST_TEST(patch(u.path(), json_auth(u), R"({"description":")" + d10000 + "\"}")->status ==
               200);
}

BOOST_AUTO_TEST_CASE(projects_of_others_or_absent_are_404_alike) {
    auto u = seed_user();
    auto other = seed_user();
    const std::string not_found = R"({"statusCode":404,"message":"Project not found"})";
    auto mine_theirs =
        "/api/users/" + std::to_string(u.user_id) + "/projects/" + std::to_string(other.project_id);
    auto absent = "/api/users/" + std::to_string(u.user_id) + "/projects/2147483647";
    expect_error(get(mine_theirs, auth(u)), 404, not_found);
    expect_error(get(absent, auth(u)), 404, not_found);
    expect_error(patch(mine_theirs, json_auth(u), R"({"name":"stolen"})"), 404, not_found);
    expect_error(patch(absent, json_auth(u), R"({"name":"x"})"), 404, not_found);
    BOOST_TEST(row(other).starts_with("Project of "));
}

BOOST_AUTO_TEST_CASE(query_strings_are_ignored) {
    auto u = seed_user();
    BOOST_TEST(get(u.path() + "?x=1&neptun-session=zzz", auth(u))->status == 200);
}

BOOST_AUTO_TEST_CASE(sql_metacharacters_are_data_and_tokens_never_leak) {
    auto u = seed_user();
    const std::string evil = R"(Robert'); DROP TABLE neptun_user_project;-- \ $1 %s)";
    auto r = patch(u.path(), json_auth(u),
                   R"({"name":"Robert'); DROP TABLE neptun_user_project;-- \\ $1 %s"})");
    BOOST_REQUIRE(r);
    BOOST_TEST(r->status == 200);
    BOOST_TEST(stores::project_field(u.project_id, "name") == evil);
    // Error answers and the access log never show the token.
    auto other = seed_user();
    for (const auto& resp : {get(other.path(), auth(u)),
                             get(u.path(), {{"Cookie", "neptun-session=" + u.token + "x"}}),
                             patch(u.path(), json_auth(u), "{")}) {
        BOOST_REQUIRE(resp);
        BOOST_TEST(resp->body.find(u.token) == std::string::npos);
        BOOST_TEST(resp->header("Cache-Control") == "no-store");
    }
    BOOST_TEST(srv.process.log().find("event=access") != std::string::npos);
    BOOST_TEST(srv.process.log().find(u.token) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
