// The {user_id} and {project_id} path segments: ASCII digits, no sign, no leading zero,
// 1 ... 2147483647 (PostgreSQL's serial range). Anything else is a 400.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace neptun::projects {

std::optional<std::int32_t> parse_id(std::string_view segment);

}  // namespace neptun::projects
