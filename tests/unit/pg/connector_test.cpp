// The connector's decisions: the host lists handed to libpq and the reconnect back-off.
#include <boost/test/unit_test.hpp>

#include "neptun/pg/connector.hpp"

namespace pg = neptun::pg;
using namespace std::chrono_literals;

BOOST_AUTO_TEST_SUITE(pg_connector)

BOOST_AUTO_TEST_CASE(every_host_of_a_multi_host_url_gets_its_port) {
    auto t = pg::parse_connect_target(
        "postgresql://u@db1.internal:5433,10.0.0.2:5434,[::1]/"
        "neptun?target_session_attrs=read-write");
    BOOST_TEST(!t.pass_through);
    BOOST_TEST((t.hosts == std::vector<std::string>{"db1.internal", "10.0.0.2", "::1"}));
    BOOST_TEST((t.ports == std::vector<std::string>{"5433", "5434", ""}));

    auto one_port = pg::parse_connect_target("host=a,b port=6000 dbname=x");
    BOOST_TEST((one_port.ports == std::vector<std::string>{"6000", "6000"}));
}

BOOST_AUTO_TEST_CASE(hostaddr_or_no_host_is_left_to_libpq) {
    BOOST_TEST(pg::parse_connect_target("host=db hostaddr=127.0.0.1 dbname=x").pass_through);
    BOOST_TEST(pg::parse_connect_target("dbname=x").pass_through);
}

BOOST_AUTO_TEST_CASE(hosts_are_told_apart_and_listed_one_entry_per_address) {
    BOOST_TEST((pg::classify_host("") == pg::host_kind::local));
    BOOST_TEST((pg::classify_host("/run/postgresql") == pg::host_kind::local));
    BOOST_TEST((pg::classify_host("127.0.0.1") == pg::host_kind::literal));
    BOOST_TEST((pg::classify_host("::1") == pg::host_kind::literal));
    BOOST_TEST((pg::classify_host("db.internal") == pg::host_kind::name));

    pg::host_lists l;
    l.add("db.internal", "127.0.0.2", "5432");
    l.add("db.internal", "127.0.0.3", "5432");
    l.add("/tmp", "", "");
    BOOST_TEST(l.entries == 3u);
    BOOST_TEST(l.host == "db.internal,db.internal,/tmp");
    BOOST_TEST(l.hostaddr == "127.0.0.2,127.0.0.3,");
    BOOST_TEST(l.port == "5432,5432,");
    l.clear();
    BOOST_TEST(l.entries == 0u);
    BOOST_TEST(l.host.empty());
}

BOOST_AUTO_TEST_CASE(the_back_off_doubles_up_to_its_ceiling) {
    BOOST_TEST(pg::backoff_ceiling(0, 100ms, 5000ms).count() == 100);
    BOOST_TEST(pg::backoff_ceiling(1, 100ms, 5000ms).count() == 200);
    BOOST_TEST(pg::backoff_ceiling(5, 100ms, 5000ms).count() == 3200);
    BOOST_TEST(pg::backoff_ceiling(6, 100ms, 5000ms).count() == 5000);
    BOOST_TEST(pg::backoff_ceiling(4000000000u, 100ms, 5000ms).count() == 5000);
}

BOOST_AUTO_TEST_SUITE_END()
