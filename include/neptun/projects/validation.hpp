// The PATCH body: one JSON object, valid UTF-8, no duplicate keys, only the four updatable
// fields and at least one of them, each within the contract's rules. Every broken field is
// reported, so a client fixes its request in one go. Pure: the unit tests and the fuzzer
// drive it directly.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "neptun/http/errors.hpp"

namespace neptun::projects {

inline constexpr std::size_t max_name_code_points = 255;
inline constexpr std::size_t max_description_code_points = 10000;

struct project_patch {
    std::optional<std::string> name;
    bool set_description = false;                          // the key was present
    std::optional<std::string> description;                // nullopt with set_description: clear it
    std::optional<std::string_view> project_type;          // one of the static names
    std::optional<std::string_view> programming_language;  // one of the static names
};

struct validation_result {
    std::optional<project_patch> patch;  // set when errors is empty
    std::vector<http::field_error> errors;
};

validation_result validate_patch(std::string_view body);

// The enum labels, shared with the SQL schema.
extern const std::vector<std::string_view> project_types;
extern const std::vector<std::string_view> programming_languages;

}  // namespace neptun::projects
