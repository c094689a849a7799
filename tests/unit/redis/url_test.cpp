// NEPTUN_REDIS_URL: redis://[[user]:password@]host[:port][/db] and unix:///path[?db=N].
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>

#include "neptun/redis/url.hpp"

namespace {

using neptun::redis::address;
using neptun::redis::parse_url;

address parse_ok(std::string_view url) {
    std::string why;
    auto a = parse_url(url, why);
    BOOST_TEST_REQUIRE(a.has_value(), "'" << url << "' refused: " << why);
    return *a;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_url)

BOOST_AUTO_TEST_CASE(default_url) {
    auto a = parse_ok("redis://127.0.0.1:6379/0");
    BOOST_TEST(a.host == "127.0.0.1");
    BOOST_TEST(a.port == 6379u);
    BOOST_TEST(a.db == 0u);
    BOOST_TEST(a.unix_path.empty());
    BOOST_TEST(a.username.empty());
    BOOST_TEST(a.password.empty());
}

BOOST_AUTO_TEST_CASE(password_port_and_db) {
    auto a = parse_ok("redis://:secret@host:7000/3");
    BOOST_TEST(a.host == "host");
    BOOST_TEST(a.port == 7000u);
    BOOST_TEST(a.db == 3u);
    BOOST_TEST(a.username.empty());
    BOOST_TEST(a.password == "secret");
}

BOOST_AUTO_TEST_CASE(username_and_password) {
    auto a = parse_ok("redis://user:pw@h/1");
    BOOST_TEST(a.host == "h");
    BOOST_TEST(a.port == 6379u);
    BOOST_TEST(a.username == "user");
    BOOST_TEST(a.password == "pw");
    BOOST_TEST(a.db == 1u);
}

BOOST_AUTO_TEST_CASE(lone_userinfo_is_the_password) {
    // As redis-cli reads redis://secret@host.
    auto a = parse_ok("redis://secret@host");
    BOOST_TEST(a.username.empty());
    BOOST_TEST(a.password == "secret");
}

BOOST_AUTO_TEST_CASE(percent_encoded_password_is_decoded) {
    auto a = parse_ok("redis://:p%40ss%3Aw@host/2");
    BOOST_TEST(a.password == "p@ss:w");
    BOOST_TEST(a.db == 2u);
}

BOOST_AUTO_TEST_CASE(host_alone_takes_the_defaults) {
    auto a = parse_ok("redis://localhost");
    BOOST_TEST(a.host == "localhost");
    BOOST_TEST(a.port == 6379u);
    BOOST_TEST(a.db == 0u);
    BOOST_TEST(parse_ok("redis://localhost/").db == 0u);
    BOOST_TEST(parse_ok("redis://localhost:6380/").port == 6380u);
}

BOOST_AUTO_TEST_CASE(port_limits) {
    BOOST_TEST(parse_ok("redis://h:1").port == 1u);
    BOOST_TEST(parse_ok("redis://h:65535").port == 65535u);
}

BOOST_AUTO_TEST_CASE(ipv6_host_without_brackets) {
    auto a = parse_ok("redis://[::1]:6380/2");
    BOOST_TEST(a.host == "::1");
    BOOST_TEST(a.port == 6380u);
    BOOST_TEST(a.db == 2u);
}

BOOST_AUTO_TEST_CASE(unix_socket) {
    auto a = parse_ok("unix:///run/redis.sock");
    BOOST_TEST(a.unix_path == "/run/redis.sock");
    BOOST_TEST(a.host.empty());
    BOOST_TEST(a.db == 0u);
}

BOOST_AUTO_TEST_CASE(unix_socket_with_db) {
    auto a = parse_ok("unix:///tmp/r.sock?db=2");
    BOOST_TEST(a.unix_path == "/tmp/r.sock");
    BOOST_TEST(a.db == 2u);
}

BOOST_AUTO_TEST_CASE(rejections_say_why) {
    for (std::string_view url :
         {"http://x", "redis://h?foo=1", "redis://h?ssl=true", "redis://h:0", "redis://h:70000",
          "redis://h:65536", "redis://h:abc", "redis://h/abc", "redis://h/-1", "redis://h/1/2",
          "redis://", "redis://:pw@", "unix://relative", "unix:relative", "unix://",
          "unix:///tmp/r.sock?db=x", "", "127.0.0.1:6379", "not a url"}) {
        BOOST_TEST_CONTEXT("url '" << url << "'") {
            std::string why;
            auto a = parse_url(url, why);
            BOOST_TEST(!a.has_value());
            BOOST_TEST(!why.empty());
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(redis_url_production)

BOOST_AUTO_TEST_CASE(scheme_is_case_insensitive) {
    BOOST_TEST(parse_ok("REDIS://h:7000/1").port == 7000u);
    BOOST_TEST(parse_ok("Rediss://h").tls);
    BOOST_TEST(parse_ok("UNIX:///tmp/r.sock").unix_path == "/tmp/r.sock");
}

BOOST_AUTO_TEST_CASE(rediss_is_tls) {
    auto a = parse_ok("rediss://:pw@redis.example.com:6380/2");
    BOOST_TEST(a.tls);
    BOOST_TEST(a.host == "redis.example.com");
    BOOST_TEST(a.port == 6380u);
    BOOST_TEST(a.password == "pw");
    BOOST_TEST(!parse_ok("redis://h").tls);
}

BOOST_AUTO_TEST_CASE(user_with_empty_password_sends_auth_user_empty) {
    auto a = parse_ok("redis://app:@h");
    BOOST_TEST(a.username == "app");
    BOOST_TEST(a.password.empty());
    BOOST_TEST(a.auth);
    BOOST_TEST(!parse_ok("redis://h").auth);
    BOOST_TEST(!parse_ok("redis://:@h").auth);
    BOOST_TEST(parse_ok("redis://:pw@h").auth);
}

BOOST_AUTO_TEST_CASE(unknown_query_parameters_are_refused) {
    std::string why;
    BOOST_TEST(!parse_url("redis://h/0?timeout=5", why));
    BOOST_TEST(why == "unknown query parameter 'timeout' (known: db, password)");
    BOOST_TEST(parse_ok("redis://h?db=4").db == 4u);
    BOOST_TEST(parse_ok("unix:///s?password=x").password == "x");
}

BOOST_AUTO_TEST_CASE(sentinel_form) {
    auto a = parse_ok("redis+sentinel://:pw@10.0.0.1:26379,s2,[::1]:26380/mymaster/2");
    BOOST_REQUIRE(a.sentinels.size() == 3u);
    BOOST_TEST(a.sentinels[0].host == "10.0.0.1");
    BOOST_TEST(a.sentinels[0].port == 26379u);
    BOOST_TEST(a.sentinels[1].host == "s2");
    BOOST_TEST(a.sentinels[1].port == 26379u);
    BOOST_TEST(a.sentinels[2].host == "::1");
    BOOST_TEST(a.sentinels[2].port == 26380u);
    BOOST_TEST(a.master_name == "mymaster");
    BOOST_TEST(a.db == 2u);
    BOOST_TEST(a.password == "pw");
    BOOST_TEST(a.auth);
    auto b = parse_ok("REDIS+SENTINEL://h:5000/m?sentinel_password=sp");
    BOOST_TEST(b.master_name == "m");
    BOOST_TEST(b.db == 0u);
    BOOST_TEST(b.sentinel_password == "sp");
    for (std::string_view url :
         {"redis+sentinel://h:26379", "redis+sentinel://h:26379/", "redis+sentinel:///m",
          "redis+sentinel://h:0/m", "redis+sentinel://h,/m", "redis+sentinel://h/m/x",
          "redis+sentinel://h/m?x=1"}) {
        BOOST_TEST_CONTEXT("url '" << url << "'") {
            std::string why;
            BOOST_TEST(!parse_url(url, why));
            BOOST_TEST(!why.empty());
        }
    }
}

BOOST_AUTO_TEST_SUITE_END()
