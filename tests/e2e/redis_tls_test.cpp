// rediss://: a redis-server with --tls-port and a CA this test makes with openssl. Sessions
// are served over it with the certificate and host name verified (and a client certificate
// presented); a wrong CA or server name keeps the server not ready: 503, never 401.
#include <stdlib.h>

#include "e2e/common.hpp"

using namespace neptun::test;

namespace {

const std::string unavailable =
    R"({"statusCode":503,"message":"Service unavailable, retry later"})";

// A CA, a server certificate for the name redis.test (and no IP address), a client
// certificate, and a second CA that signed nothing of this.
struct test_pki {
    test_pki() {
        char tmpl[] = "/tmp/neptun-redis-tls-XXXXXX";
        if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
        dir = tmpl;
        std::string script = "set -e; cd '" + dir +
                             "'\n"
                             "key='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
                             "openssl req -x509 $key -keyout ca.key -out ca.crt -days 2 "
                             "-subj /CN=neptun-test-ca\n"
                             "openssl req -x509 $key -keyout other-ca.key -out other-ca.crt "
                             "-days 2 -subj /CN=neptun-other-ca\n"
                             "openssl req $key -keyout server.key -out server.csr -subj "
                             "/CN=redis.test\n"
                             "printf 'subjectAltName=DNS:redis.test\\n' > server.ext\n"
                             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
                             "-CAcreateserial -out server.crt -days 2 -extfile server.ext\n"
                             "openssl req $key -keyout client.key -out client.csr -subj "
                             "/CN=neptun-api\n"
                             "printf 'extendedKeyUsage=clientAuth\\n' > client.ext\n"
                             "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key "
                             "-CAcreateserial -out client.crt -days 2 -extfile client.ext\n"
                             "chmod 644 *\n";
        auto r = run_command({"/bin/sh", "-c", script});
        if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.err);
    }
    ~test_pki() { run_command({"/bin/rm", "-rf", dir}); }
    std::string file(const std::string& name) const { return dir + "/" + name; }
    std::string dir;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(redis_tls)

BOOST_AUTO_TEST_CASE(sessions_over_tls_verified_and_refused_when_wrong) {
    test_pki pki;
    int tls_port = free_port();
    // Plain port for the test's own redis-cli; the server speaks only TLS, and wants our
    // client certificate.
    redis_server redis({"--tls-port", std::to_string(tls_port), "--tls-cert-file",
                        pki.file("server.crt"), "--tls-key-file", pki.file("server.key"),
                        "--tls-ca-cert-file", pki.file("ca.crt"), "--tls-auth-clients", "yes"});
    auto u = seed_user("neptun", redis.port());
    std::string url = "rediss://127.0.0.1:" + std::to_string(tls_port) + "/0";
    env_map good{{"NEPTUN_REDIS_URL", url},
                 {"NEPTUN_REDIS_TLS_CA_FILE", pki.file("ca.crt")},
                 {"NEPTUN_REDIS_TLS_SERVER_NAME", "redis.test"},
                 {"NEPTUN_REDIS_TLS_CERT_FILE", pki.file("client.crt")},
                 {"NEPTUN_REDIS_TLS_KEY_FILE", pki.file("client.key")},
                 {"NEPTUN_THREADS", "1"}};
    {
        server_process srv(base_env(good));
        BOOST_REQUIRE(srv.wait_ready());
        auto r = http_request(srv.port, "GET", u.path(), auth(u));
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 200);
        auto other = http_request(srv.port, "GET", u.path(), {{"Cookie", "neptun-session=nope"}});
        BOOST_REQUIRE(other);
        BOOST_TEST(other->status == 401);  // an unknown session over TLS is still unknown
        // The session cache's invalidation connection is TLS too, and tracking is on.
        BOOST_TEST(srv.process.wait_for_log("event=session_cache_on", 10s), srv.process.log());
        // Both of the server's connections went through the TLS port (the plain port has
        // only ours): the data connection, the invalidation one, and this INFO.
        auto info = stores::redis({"INFO", "clients"}, redis.port());
        BOOST_TEST(info.find("connected_clients:3") != std::string::npos, info);
    }
    auto refused = [&](env_map changes, const std::string& why_in_log) {
        auto env = good;
        for (auto& [k, v] : changes) env[k] = v;
        server_process srv(base_env(env));
        BOOST_REQUIRE(srv.process.wait_for_log("event=redis_down", 10s));
        BOOST_TEST(srv.process.log().find(why_in_log) != std::string::npos, srv.process.log());
        auto ready = http_request(srv.admin_port, "GET", "/readyz");
        BOOST_REQUIRE(ready);
        BOOST_TEST(ready->status == 503);
        auto r = http_request(srv.port, "GET", u.path(), auth(u));
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 503);  // never 401: the user is not logged out
        BOOST_TEST(r->body == unavailable);
        BOOST_TEST(srv.process.count_in_log("event=redis_connected") == 0u);
    };
    BOOST_TEST_CONTEXT("a CA that did not sign the server's certificate") {
        refused({{"NEPTUN_REDIS_TLS_CA_FILE", pki.file("other-ca.crt")}},
                "certificate verify failed");
    }
    BOOST_TEST_CONTEXT("a server name the certificate does not carry") {
        refused({{"NEPTUN_REDIS_TLS_SERVER_NAME", "other.test"}}, "certificate verify failed");
    }
    BOOST_TEST_CONTEXT("the URL's host (an IP address not in the certificate)") {
        refused({{"NEPTUN_REDIS_TLS_SERVER_NAME", ""}}, "certificate verify failed");
    }
    BOOST_TEST_CONTEXT("plain redis:// against the TLS port") {
        auto env = good;
        env["NEPTUN_REDIS_URL"] = "redis://127.0.0.1:" + std::to_string(tls_port) + "/0";
        server_process srv(base_env(env));
        BOOST_REQUIRE(srv.process.wait_for_log("event=redis_down", 10s));
        auto r = http_request(srv.port, "GET", u.path(), auth(u));
        BOOST_REQUIRE(r);
        BOOST_TEST(r->status == 503);
    }
}

BOOST_AUTO_TEST_SUITE_END()
