#include "neptun/projects/json.hpp"

#include "neptun/http/errors.hpp"

namespace neptun::projects {
namespace {

void append_optional(std::string& out, const std::optional<std::string_view>& v) {
    if (v)
        http::append_json_string(out, *v);
    else
        out += "null";
}

}  // namespace

std::string encode_project(const project_row& p) {
    std::string out;
    out.reserve(192 + p.name.size() + (p.description ? p.description->size() : 0));
    out += "{\"project\":{\"id\":";
    out += std::to_string(p.id);
    out += ",\"name\":";
    http::append_json_string(out, p.name);
    out += ",\"description\":";
    append_optional(out, p.description);
    out += ",\"project_type\":";
    http::append_json_string(out, p.project_type);
    out += ",\"programming_language\":";
    http::append_json_string(out, p.programming_language);
    out += ",\"created_at\":";
    append_optional(out, p.created_at);
    out += ",\"updated_at\":";
    append_optional(out, p.updated_at);
    out += ",\"neptun_user_id\":";
    out += std::to_string(p.neptun_user_id);
    out += "}}";
    return out;
}

}  // namespace neptun::projects
