// Bytes -> a project_row -> encode_project() -> boost::json::parse. Invariant: the encoder
// writes one JSON document {"project":{...}} with the eight contract fields, each equal to the
// row's (null where the optional is empty). The encoder's contract is valid UTF-8 text, so
// inputs whose strings are not valid UTF-8 are skipped.
//
// Input layout, readable in the seed corpus: fields separated by 0xFF (a byte valid UTF-8
// never holds) in the order id, name, description, project_type, programming_language,
// created_at, updated_at, neptun_user_id. A field that is the single byte 0xFE (never valid
// UTF-8 either) is an empty optional; missing trailing fields are empty/0. A numeric field
// that is not a decimal int64 gives its first eight bytes as the number instead, so every
// int64 is reachable.
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include <boost/json.hpp>

#include "fuzz_support.hpp"
#include "neptun/projects/json.hpp"

namespace {

std::int64_t as_number(std::string_view f) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(f.data(), f.data() + f.size(), v);
    if (ec == std::errc() && end == f.data() + f.size() && !f.empty()) return v;
    v = 0;
    if (!f.empty()) std::memcpy(&v, f.data(), f.size() < sizeof v ? f.size() : sizeof v);
    return v;
}

std::optional<std::string_view> as_optional(std::string_view f) {
    if (f == "\xFE") return std::nullopt;
    return f;
}

bool equal_string(const boost::json::value& v, std::string_view expected) {
    return v.is_string() &&
           std::string_view(v.get_string().data(), v.get_string().size()) == expected;
}

bool equal_optional(const boost::json::value& v, const std::optional<std::string_view>& expected) {
    return expected ? equal_string(v, *expected) : v.is_null();
}

bool equal_number(const boost::json::value& v, std::int64_t expected) {
    return v.is_int64() && v.get_int64() == expected;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace neptun;
    auto input = fuzz::as_text(data, size);
    std::array<std::string_view, 8> f{};
    for (std::size_t i = 0; i < f.size() && !input.empty(); ++i) {
        auto sep = input.find('\xFF');
        f[i] = input.substr(0, sep);
        input = sep == std::string_view::npos ? std::string_view() : input.substr(sep + 1);
    }

    projects::project_row row;
    row.id = as_number(f[0]);
    row.name = f[1];
    row.description = as_optional(f[2]);
    row.project_type = f[3];
    row.programming_language = f[4];
    row.created_at = as_optional(f[5]);
    row.updated_at = as_optional(f[6]);
    row.neptun_user_id = as_number(f[7]);
    for (auto s : {std::optional<std::string_view>(row.name), row.description,
                   std::optional<std::string_view>(row.project_type),
                   std::optional<std::string_view>(row.programming_language), row.created_at,
                   row.updated_at})
        if (s && !fuzz::valid_utf8(*s)) return 0;

    auto text = projects::encode_project(row);
    boost::system::error_code ec;
    auto doc = boost::json::parse(text, ec);
    NEPTUN_FUZZ_CHECK(!ec);
    NEPTUN_FUZZ_CHECK(doc.is_object() && doc.get_object().size() == 1);
    auto* project = doc.get_object().if_contains("project");
    NEPTUN_FUZZ_CHECK(project && project->is_object());
    const auto& o = project->get_object();
    NEPTUN_FUZZ_CHECK(o.size() == 8);
    auto field = [&](std::string_view key) -> const boost::json::value& {
        auto* v = o.if_contains(key);
        NEPTUN_FUZZ_CHECK(v != nullptr);
        return *v;
    };
    NEPTUN_FUZZ_CHECK(equal_number(field("id"), row.id));
    NEPTUN_FUZZ_CHECK(equal_string(field("name"), row.name));
    NEPTUN_FUZZ_CHECK(equal_optional(field("description"), row.description));
    NEPTUN_FUZZ_CHECK(equal_string(field("project_type"), row.project_type));
    NEPTUN_FUZZ_CHECK(equal_string(field("programming_language"), row.programming_language));
    NEPTUN_FUZZ_CHECK(equal_optional(field("created_at"), row.created_at));
    NEPTUN_FUZZ_CHECK(equal_optional(field("updated_at"), row.updated_at));
    NEPTUN_FUZZ_CHECK(equal_number(field("neptun_user_id"), row.neptun_user_id));
    return 0;
}
