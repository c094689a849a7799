// Entity tags and the conditional request headers of RFC 9110 §8.8.3 and §13.1: If-Match
// (strong comparison) for PATCH, If-None-Match (weak comparison) for GET. Pure parsing and
// comparison; the project use case decides, and the SQL statement that writes checks.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace neptun::http {

struct entity_tag {
    bool weak = false;
    std::string_view opaque;  // the characters between the quotes
};

// What an If-Match or If-None-Match field list says: absent, `*`, or a list of tags.
struct precondition {
    enum class kind { absent, any, tags, malformed };
    kind what = kind::absent;
    std::vector<entity_tag> tags;  // views into the header values
};

// Parses every field line of one of the two headers as one comma-separated list (RFC 9110
// §5.3): `*` alone, or entity tags; empty list elements are allowed. `*` together with
// tags, an unquoted or unterminated tag, a character outside etagc, and a list with no tag
// at all (RFC 9110 would let that mean "matches nothing"; for a client it is a bug, and a
// 400 says so where a 412 would mislead) are malformed.
precondition parse_precondition(std::span<const std::string_view> field_values);

// Strong comparison (If-Match): both strong and equal.
bool matches_strong(const precondition& p, std::string_view current_opaque);
// Weak comparison (If-None-Match): opaque parts equal, W/ ignored.
bool matches_weak(const precondition& p, std::string_view current_opaque);

// The strong tags of an If-Match list joined with spaces (a byte no tag holds), as the
// conditional UPDATE takes them. Weak tags, and tags that are not of the form the server
// makes (32 lowercase hex digits), are left out: they never match.
std::string strong_tag_list(const precondition& p);

// `"<opaque>"`, as the ETag header carries it.
std::string quote_tag(std::string_view opaque);

}  // namespace neptun::http
