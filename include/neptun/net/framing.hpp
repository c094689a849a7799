// Request framing checks that Beast 1.81's parser lets through (fixed upstream only in
// 1.92). Ambiguous framing is how requests get smuggled past a proxy, so the connection
// loop answers 400 and closes whenever check_framing() finds anything.
#pragma once

#include <span>
#include <string_view>

namespace neptun::net {

enum class framing_error {
    none,
    length_with_transfer_encoding,  // Content-Length and Transfer-Encoding together
    unsupported_transfer_encoding,  // anything but exactly one `chunked` coding
    bad_content_length,             // empty, not digits, or too large
    conflicting_content_length,     // several Content-Length values that differ
};

// content_lengths / transfer_encodings: the raw values of every such header field.
framing_error check_framing(std::span<const std::string_view> content_lengths,
                            std::span<const std::string_view> transfer_encodings, bool http10);

std::string_view describe(framing_error e);

}  // namespace neptun::net
