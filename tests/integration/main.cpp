#define BOOST_TEST_MODULE neptun_integration
#include <boost/test/unit_test.hpp>
