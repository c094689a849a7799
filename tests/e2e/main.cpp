#define BOOST_TEST_MODULE neptun_e2e
#include <boost/test/unit_test.hpp>
