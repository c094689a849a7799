// The project as the API shows it: {"project":{...}} with the contract's field names
// (project_type and programming_language for the columns type and main_language).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace neptun::projects {

struct project_row {
    std::int64_t id = 0;
    std::string_view name;
    std::optional<std::string_view> description;
    std::string_view project_type;
    std::string_view programming_language;
    std::optional<std::string_view> created_at;  // already ISO 8601 UTC with ms and Z
    std::optional<std::string_view> updated_at;
    std::int64_t neptun_user_id = 0;
};

std::string encode_project(const project_row& p);

}  // namespace neptun::projects
