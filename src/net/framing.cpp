#include "neptun/net/framing.hpp"

#include "neptun/net/text.hpp"

#include <cstdint>
#include <optional>

namespace neptun::net {
namespace {

// Calls f(element) for each comma-separated element; returns false if f does.
template <typename F>
bool for_each_element(std::string_view list, F&& f) {
    for (;;) {
        auto comma = list.find(',');
        if (!f(trim_ows(list.substr(0, comma)))) return false;
        if (comma == std::string_view::npos) return true;
        list.remove_prefix(comma + 1);
    }
}

std::optional<std::uint64_t> parse_length(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
}

}  // namespace

framing_error check_framing(std::span<const std::string_view> content_lengths,
                            std::span<const std::string_view> transfer_encodings, bool http10) {
    if (!transfer_encodings.empty()) {
        if (!content_lengths.empty()) return framing_error::length_with_transfer_encoding;
        // HTTP/1.0 has no chunked coding (RFC 9112 §6.1); a TE there is a smuggling attempt.
        if (http10) return framing_error::unsupported_transfer_encoding;
        int codings = 0;
        bool only_chunked = true;
        for (auto value : transfer_encodings) {
            for_each_element(value, [&](std::string_view coding) {
                ++codings;
                if (!iequals(coding, "chunked")) only_chunked = false;
                return true;
            });
        }
        if (codings != 1 || !only_chunked) return framing_error::unsupported_transfer_encoding;
        return framing_error::none;
    }
    std::optional<std::uint64_t> length;
    for (auto value : content_lengths) {
        bool ok = for_each_element(value, [&](std::string_view element) {
            auto v = parse_length(element);
            if (!v) return false;
            if (length && *length != *v) {
                length = UINT64_MAX;  // marks the conflict for the check below
                return false;
            }
            length = v;
            return true;
        });
        if (!ok)
            return length == UINT64_MAX ? framing_error::conflicting_content_length
                                        : framing_error::bad_content_length;
    }
    return framing_error::none;
}

std::string_view describe(framing_error e) {
    switch (e) {
        case framing_error::none:
            return "ok";
        case framing_error::length_with_transfer_encoding:
            return "Content-Length and Transfer-Encoding together";
        case framing_error::unsupported_transfer_encoding:
            return "Transfer-Encoding must be exactly chunked";
        case framing_error::bad_content_length:
            return "Malformed Content-Length";
        case framing_error::conflicting_content_length:
            return "Conflicting Content-Length values";
    }
    return "Bad framing";
}

}  // namespace neptun::net
