// What every fuzz target shares: an invariant check that says which one broke, a strict UTF-8
// decoder written apart from the code under test, and exact-size copies so that AddressSanitizer
// flags a read one byte past the end of a header value or a body.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

// abort() rather than __builtin_trap(): libFuzzer then prints which invariant failed, and the
// crashing input is saved either way.
#define NEPTUN_FUZZ_CHECK(cond)                                                             \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::fprintf(stderr, "fuzz invariant violated: %s at %s:%d\n", #cond, __FILE__, \
                         __LINE__);                                                         \
            std::abort();                                                                   \
        }                                                                                   \
    } while (0)

namespace neptun::fuzz {

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence.
inline std::optional<std::vector<char32_t>> decode_utf8(std::string_view s) {
    std::vector<char32_t> out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            out.push_back(c);
            ++i;
            continue;
        }
        std::size_t extra;
        char32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return std::nullopt;
        }
        if (s.size() - i - 1 < extra) return std::nullopt;
        for (std::size_t k = 1; k <= extra; ++k) {
            auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) return std::nullopt;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
        out.push_back(cp);
        i += extra + 1;
    }
    return out;
}

inline bool valid_utf8(std::string_view s) {
    return decode_utf8(s).has_value();
}

// Unicode White_Space (PropList.txt), plus U+FEFF as the API contract counts it.
inline bool is_contract_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

// A heap block of exactly s.size() bytes: unlike std::string (spare capacity, small-string
// buffer), a read past its end is an ASan report.
class exact_copy {
  public:
    explicit exact_copy(std::string_view s) : data_(new char[s.size()]), size_(s.size()) {
        if (size_) std::memcpy(data_.get(), s.data(), size_);
    }
    std::string_view view() const { return {data_.get(), size_}; }

  private:
    std::unique_ptr<char[]> data_;
    std::size_t size_;
};

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

}  // namespace neptun::fuzz
