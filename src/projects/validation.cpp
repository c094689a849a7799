#include "neptun/projects/validation.hpp"

#include <unordered_set>

#include <boost/json/basic_parser_impl.hpp>

namespace neptun::projects {

const std::vector<std::string_view> project_types{"web-site", "web-service", "web-app"};
const std::vector<std::string_view> programming_languages{
    "typescript", "javascript", "php", "go", "python", "java", "kotlin", "ruby", "elixir"};

namespace {

using boost::json::error_code;
using json_sv = boost::json::string_view;

enum class field_id { name, description, project_type, programming_language, unknown };

field_id field_of(std::string_view key) {
    if (key == "name") return field_id::name;
    if (key == "description") return field_id::description;
    if (key == "project_type") return field_id::project_type;
    if (key == "programming_language") return field_id::programming_language;
    return field_id::unknown;
}

// Decodes one code point of valid UTF-8 (the JSON parser has checked it) at s[i].
char32_t decode(std::string_view s, std::size_t& i) {
    auto c = static_cast<unsigned char>(s[i]);
    int extra = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    char32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
    for (int k = 0; k < extra && i + 1 < s.size(); ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F);
    ++i;
    return cp;
}

// Unicode White_Space, plus U+FEFF as JavaScript's trim() has it.
bool is_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

struct text_facts {
    std::size_t code_points = 0;
    bool has_nul = false;
    bool blank = true;
};

text_facts examine(std::string_view s) {
    text_facts f;
    for (std::size_t i = 0; i < s.size();) {
        char32_t c = decode(s, i);
        ++f.code_points;
        if (c == 0) f.has_nul = true;
        if (!is_white_space(c)) f.blank = false;
    }
    return f;
}

std::string one_of(const std::vector<std::string_view>& names) {
    std::string m = "must be one of ";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i) m += ", ";
        m += names[i];
    }
    return m;
}

// A SAX handler: no DOM, and it sees duplicate keys that a DOM would merge.
struct patch_handler {
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    int depth = 0;
    bool top_is_object = false;
    std::string key, text;
    field_id current = field_id::unknown;
    std::string current_key;
    std::unordered_set<std::string> seen;
    std::unordered_set<std::string> reported;
    project_patch patch;
    std::vector<http::field_error> errors;
    std::size_t known_fields = 0;

    void fail(const std::string& field, std::string message) {
        if (reported.insert(field).second) errors.push_back({field, std::move(message)});
    }

    // A value at depth 1 (a member of the top-level object) of a kind other than string/null.
    void wrong_type() {
        switch (current) {
            case field_id::name:
                fail("name", "must be a string");
                break;
            case field_id::description:
                fail("description", "must be a string or null");
                break;
            case field_id::project_type:
                fail("project_type", one_of(project_types));
                break;
            case field_id::programming_language:
                fail("programming_language", one_of(programming_languages));
                break;
            case field_id::unknown:
                break;
        }
    }

    bool scalar_at_member() { return depth == 1 && top_is_object; }

    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_array_begin(error_code&) {
        if (depth == 0)
            fail("body", "must be a JSON object");
        else if (scalar_at_member())
            wrong_type();
        ++depth;
        return true;
    }
    bool on_array_end(std::size_t, error_code&) {
        --depth;
        return true;
    }
    bool on_object_begin(error_code&) {
        if (depth == 0)
            top_is_object = true;
        else if (scalar_at_member())
            wrong_type();
        ++depth;
        return true;
    }
    bool on_object_end(std::size_t, error_code&) {
        --depth;
        return true;
    }
    bool on_string_part(json_sv s, std::size_t, error_code&) {
        if (scalar_at_member()) text.append(s.data(), s.size());
        return true;
    }
    bool on_string(json_sv s, std::size_t, error_code&) {
        if (depth == 0) {
            fail("body", "must be a JSON object");
            return true;
        }
        if (!scalar_at_member()) return true;
        text.append(s.data(), s.size());
        string_value(std::move(text));
        text.clear();
        return true;
    }
    bool on_key_part(json_sv s, std::size_t, error_code&) {
        if (depth == 1) key.append(s.data(), s.size());
        return true;
    }
    bool on_key(json_sv s, std::size_t, error_code&) {
        if (depth != 1) return true;
        key.append(s.data(), s.size());
        current_key = std::move(key);
        key.clear();
        current = field_of(current_key);
        if (!seen.insert(current_key).second) {
            fail(current_key, "appears more than once");
            current = field_id::unknown;  // judge no value of a duplicated key
            return true;
        }
        if (current == field_id::unknown)
            fail(current_key,
                 "is not a field of a project (name, description, project_type, "
                 "programming_language)");
        else
            ++known_fields;
        return true;
    }
    bool on_number_part(json_sv, error_code&) { return true; }
    bool on_int64(std::int64_t, json_sv, error_code&) { return scalar(); }
    bool on_uint64(std::uint64_t, json_sv, error_code&) { return scalar(); }
    bool on_double(double, json_sv, error_code&) { return scalar(); }
    bool on_bool(bool, error_code&) { return scalar(); }
    bool on_null(error_code&) {
        if (depth == 0)
            fail("body", "must be a JSON object");
        else if (scalar_at_member()) {
            if (current == field_id::description) {
                patch.set_description = true;
                patch.description.reset();
            } else {
                wrong_type();
            }
        }
        return true;
    }
    bool on_comment_part(json_sv, error_code&) { return true; }
    bool on_comment(json_sv, error_code&) { return true; }

    bool scalar() {
        if (depth == 0)
            fail("body", "must be a JSON object");
        else if (scalar_at_member())
            wrong_type();
        return true;
    }

    void string_value(std::string value) {
        switch (current) {
            case field_id::name: {
                auto f = examine(value);
                if (f.has_nul)
                    fail("name", "must not contain U+0000");
                else if (f.blank)
                    fail("name", "must not be blank");
                else if (f.code_points > max_name_code_points)
                    fail("name", "must be at most 255 characters");
                else
                    patch.name = std::move(value);
                break;
            }
            case field_id::description: {
                auto f = examine(value);
                if (f.has_nul)
                    fail("description", "must not contain U+0000");
                else if (f.code_points > max_description_code_points)
                    fail("description", "must be at most 10000 characters");
                else {
                    patch.set_description = true;
                    patch.description = std::move(value);
                }
                break;
            }
            case field_id::project_type:
                for (auto t : project_types)
                    if (t == value) patch.project_type = t;
                if (!patch.project_type) wrong_type();
                break;
            case field_id::programming_language:
                for (auto l : programming_languages)
                    if (l == value) patch.programming_language = l;
                if (!patch.programming_language) wrong_type();
                break;
            case field_id::unknown:
                break;
        }
    }
};

}  // namespace

validation_result validate_patch(std::string_view body) {
    validation_result out;
    boost::json::parse_options opts;  // strict: no comments, no trailing commas, UTF-8 checked
    opts.max_depth = 64;
    boost::json::basic_parser<patch_handler> parser(opts);
    error_code ec;
    auto n = parser.write_some(false, body.data(), body.size(), ec);
    if (!ec && n != body.size()) ec = boost::json::error::extra_data;
    auto& h = parser.handler();
    if (ec) {
        out.errors.push_back({"body", "must be one valid JSON object in UTF-8"});
        return out;
    }
    if (!h.top_is_object) {
        out.errors.push_back({"body", "must be a JSON object"});
        return out;
    }
    out.errors = std::move(h.errors);
    if (out.errors.empty() && h.known_fields == 0)
        out.errors.push_back({"body",
                              "must contain at least one of name, description, project_type, "
                              "programming_language"});
    if (out.errors.empty()) out.patch = std::move(h.patch);
    return out;
}

}  // namespace neptun::projects
