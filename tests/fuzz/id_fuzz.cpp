// Bytes -> parse_id(), the {user_id}/{project_id} path segment parser. Invariants: an id
// parsed is in 1..2147483647 and the segment is exactly its decimal form; every such decimal
// form parses. The first eight bytes also give a number whose decimal form is tried, so the
// edges of the range are reached without luck.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "neptun/projects/ids.hpp"

namespace {

// Written apart from parse_id(): the decimal of an integer in 1..INT32_MAX, no sign, no
// leading zero.
bool is_canonical_id(std::string_view s) {
    if (s.empty() || s.size() > 10 || s[0] < '1' || s[0] > '9') return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v <= 2147483647u;
}

void check(std::string_view segment) {
    neptun::fuzz::exact_copy copy(segment);
    auto r = neptun::projects::parse_id(copy.view());
    if (r) {
        NEPTUN_FUZZ_CHECK(*r >= 1 && *r <= 2147483647);
        NEPTUN_FUZZ_CHECK(segment == std::to_string(*r));
    }
    NEPTUN_FUZZ_CHECK(r.has_value() == is_canonical_id(segment));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    check(neptun::fuzz::as_text(data, size));
    std::int64_t n = 0;
    if (size) std::memcpy(&n, data, size < sizeof n ? size : sizeof n);
    auto decimal = std::to_string(n);
    auto r = neptun::projects::parse_id(decimal);
    NEPTUN_FUZZ_CHECK(r.has_value() == (n >= 1 && n <= 2147483647));
    if (r) NEPTUN_FUZZ_CHECK(*r == n);
    check(decimal);
    return 0;
}
