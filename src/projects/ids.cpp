#include "neptun/projects/ids.hpp"

namespace neptun::projects {

std::optional<std::int32_t> parse_id(std::string_view s) {
    if (s.empty() || s.size() > 10 || s[0] == '0') return std::nullopt;
    std::int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    if (v > INT32_MAX) return std::nullopt;
    return static_cast<std::int32_t>(v);
}

}  // namespace neptun::projects
