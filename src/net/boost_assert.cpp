// Boost's assertion handler for the builds that keep assertions (debug, asan, tsan, fuzz):
// every Boost assertion aborts, except one that is wrong in Boost 1.81 itself, which would
// otherwise let any client abort those builds with three writes:
// basic_parser::parse_chunk_header asserts `n >= 5` once it has seen the last chunk, but a
// body whose first chunk is the last one ("0\r\n" then "\r", "\n" in later reads) reaches it
// with 4 bytes; the code after the assertion handles that correctly (it waits for CRLFCRLF).
// Fixed upstream by boostorg/beast#2861 (Boost 1.86). Reproducer: tests/fuzz/crashes/request/;
// tests/e2e/abuse_test.cpp sends it to the server.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <boost/assert.hpp>
#include <boost/version.hpp>

namespace {

// Only Boost 1.81's own assertion, in that one function: any other version or place aborts.
bool known_beast_1_81_chunk_assertion(const char* expr, const char* function, const char* file) {
#if BOOST_VERSION / 100 == 1081
    return std::strcmp(expr, "n >= 5") == 0 &&
           std::string_view(function).find("parse_chunk_header") != std::string_view::npos &&
           std::string_view(file).ends_with("boost/beast/http/impl/basic_parser.ipp");
#else
    (void)expr, (void)function, (void)file;
    return false;
#endif
}

}  // namespace

namespace boost {

void assertion_failed(const char* expr, const char* function, const char* file, long line) {
    if (known_beast_1_81_chunk_assertion(expr, function, file)) return;
    std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed.\n", file, line, function, expr);
    std::abort();
}

void assertion_failed_msg(const char* expr, const char* msg, const char* function, const char* file,
                          long line) {
    std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed: %s\n", file, line, function, expr,
                 msg);
    std::abort();
}

}  // namespace boost
