#define BOOST_TEST_MODULE neptun_unit
#include <boost/test/unit_test.hpp>
