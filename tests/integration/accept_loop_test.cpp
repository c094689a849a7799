// The server core's accept loops when something throws inside one (server.cpp
// accept_connections): the acceptor is closed, so the kernel stops handing the SO_REUSEPORT
// listener connections that nobody would accept, and the other workers take them all.
#include <atomic>

#include <boost/test/unit_test.hpp>

#include "neptun/net/metrics.hpp"
#include "neptun/net/server.hpp"
#include "support/http_client.hpp"

using namespace neptun;
using namespace neptun::test;
namespace http = boost::beast::http;

namespace {

// Answers every request at once with 200; its first error body (the 503 past the
// connection cap) throws, in whichever worker asks first.
class throwing_once_service final : public net::service {
  public:
    explicit throwing_once_service(std::atomic<int>& thrown) : thrown_(thrown) {}
    net::routed route(const net::request&) override {
        net::routed r;
        r.early.emplace(http::status::ok, 11);
        r.early->body() = "{}";
        return r;
    }
    boost::asio::awaitable<net::response> handle(const net::request&, const net::routed&,
                                                 net::clock::time_point) override {
        co_return net::response{http::status::ok, 11};
    }
    net::response error(http::status status, std::string_view) override {
        int expected = 0;
        if (thrown_.compare_exchange_strong(expected, 1))
            throw std::runtime_error("no error body this time");
        net::response res{status, 11};
        res.body() = "{}";
        return res;
    }

  private:
    std::atomic<int>& thrown_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(accept_loop)

BOOST_AUTO_TEST_CASE(an_exception_in_one_accept_loop_leaves_no_listener_nobody_accepts_on) {
    std::atomic<int> thrown{0};
    net::limits lim;
    lim.max_connections = 1;
    net::server srv(lim, {"127.0.0.1", 0}, 2, [&](boost::asio::io_context&, unsigned) {
        return std::make_unique<throwing_once_service>(thrown);
    });
    srv.start({});
    const auto port = srv.port();

    // The one connection the cap allows, held open: every later one is refused.
    http_connection held(port);
    held.send(build_request("GET", "/"));
    auto first = held.read_response();
    BOOST_REQUIRE(first);
    BOOST_TEST(first->status == 200);

    // Connections land on either worker's listener. The first refusal throws (that
    // connection is closed with no answer, and that worker's acceptor with it); every other
    // one must be answered 503 at once by the worker still accepting: none may wait in the
    // backlog of a listener that nobody accepts on.
    int refused = 0, unanswered = 0, hung = 0;
    for (int i = 0; i < 40; ++i) {
        http_connection c(port);
        c.send(build_request("GET", "/"));
        auto r = c.read_response(3s);
        if (r) {
            BOOST_TEST(r->status == 503);
            ++refused;
        } else if (c.wait_closed(0ms)) {
            ++unanswered;
        } else {
            ++hung;
        }
    }
    BOOST_TEST(thrown.load() == 1);
    BOOST_TEST(unanswered == 1);
    BOOST_TEST(hung == 0);
    BOOST_TEST(refused == 39);

    // The held connection is still served by its worker.
    held.send(build_request("GET", "/"));
    auto again = held.read_response();
    BOOST_REQUIRE(again);
    BOOST_TEST(again->status == 200);
    // A drain, not a forced stop: every connection's frame ends on its thread, so the
    // process-wide connection count is back where it was for whatever runs next.
    held.close();
    srv.drain();
    srv.join();
    BOOST_TEST(net::global_metrics().open_connections.load() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
