// Bytes -> one to three Cookie header values (split at the first two line feeds) ->
// find_session_cookie(); the same values go to accepts_json() and is_json_content_type().
// Invariants: a cookie found is 1..512 cookie-octets (RFC 6265 §4.1.1) lying inside one of
// the header values; several Accept fields mean what their comma-joined list means
// (RFC 9110 §5.3); is_json_content_type() agrees with a separately written reading of
// application/json with parameters.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "neptun/http/headers.hpp"

namespace {

bool is_cookie_octet(unsigned char c) {
    return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
           (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

// Written apart from is_json_content_type(): application/json in any case, with OWS around
// it, then nothing or parameters.
bool is_json_media_type(std::string_view v) {
    constexpr std::string_view want = "application/json";
    std::size_t i = 0;
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
    if (v.size() - i < want.size()) return false;
    for (std::size_t k = 0; k < want.size(); ++k) {
        char c = v[i + k];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != want[k]) return false;
    }
    i += want.size();
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
    return i == v.size() || v[i] == ';';
}

bool inside(std::string_view part, std::string_view whole) {
    return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace neptun;
    auto input = fuzz::as_text(data, size);

    std::vector<fuzz::exact_copy> copies;
    for (int i = 0; i < 2; ++i) {
        auto lf = input.find('\n');
        if (lf == std::string_view::npos) break;
        copies.emplace_back(input.substr(0, lf));
        input.remove_prefix(lf + 1);
    }
    copies.emplace_back(input);
    std::vector<std::string_view> values;
    for (const auto& c : copies) values.push_back(c.view());

    auto cookie = http::find_session_cookie(values, "neptun-session");
    NEPTUN_FUZZ_CHECK(cookie.status == http::cookie_status::ok ||
                      cookie.status == http::cookie_status::missing ||
                      cookie.status == http::cookie_status::malformed);
    if (cookie.status == http::cookie_status::ok) {
        auto t = cookie.token;
        NEPTUN_FUZZ_CHECK(t.size() >= 1 && t.size() <= http::max_token_length);
        for (unsigned char c : t) NEPTUN_FUZZ_CHECK(is_cookie_octet(c));
        bool found = false;
        for (auto v : values) found = found || inside(t, v);
        NEPTUN_FUZZ_CHECK(found);
        // The name is there too, before the token.
        bool named = false;
        for (auto v : values)
            named =
                named || (inside(t, v) &&
                          std::string_view(v.data(), static_cast<std::size_t>(t.data() - v.data()))
                                  .find("neptun-session") != std::string_view::npos);
        NEPTUN_FUZZ_CHECK(named);
    } else {
        NEPTUN_FUZZ_CHECK(cookie.token.empty());
    }

    // No Accept field at all admits JSON; several fields read as their joined list.
    NEPTUN_FUZZ_CHECK(http::accepts_json({}));
    std::string joined;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) joined += ',';
        joined += values[i];
    }
    fuzz::exact_copy joined_copy(joined);
    std::string_view joined_view = joined_copy.view();
    NEPTUN_FUZZ_CHECK(http::accepts_json(values) == http::accepts_json({&joined_view, 1}));

    for (auto v : values) NEPTUN_FUZZ_CHECK(http::is_json_content_type(v) == is_json_media_type(v));
    fuzz::exact_copy whole(fuzz::as_text(data, size));
    (void)http::is_json_content_type(whole.view());
    return 0;
}
