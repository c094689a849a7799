// Bytes -> validate_patch(), the PATCH body validator. Invariants: a body yields either a
// patch or errors, never both or neither; a patch holds at least one field, each within the
// contract (name: 1..255 code points, no U+0000, not only white space; description: at most
// 10000 code points, no U+0000; the enums: one of the static names); the body it came from
// is one JSON object whose members are exactly the patch; and the patch written back as JSON
// validates to the same patch. Boost.JSON's DOM parser is the reference for what is one JSON
// object: anything else gets exactly one error, about the body.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "fuzz_support.hpp"
#include "neptun/projects/validation.hpp"

namespace {

using neptun::projects::project_patch;

// The name must be one of the list's own string_views, not a view into the request body.
bool is_static_name(std::string_view v, const std::vector<std::string_view>& names) {
    return std::any_of(names.begin(), names.end(), [&](std::string_view n) {
        return n.data() == v.data() && n.size() == v.size();
    });
}

void check_text(const std::string& s, std::size_t min_cp, std::size_t max_cp, bool not_blank) {
    auto cps = neptun::fuzz::decode_utf8(s);
    NEPTUN_FUZZ_CHECK(cps.has_value());
    NEPTUN_FUZZ_CHECK(cps->size() >= min_cp && cps->size() <= max_cp);
    NEPTUN_FUZZ_CHECK(std::find(cps->begin(), cps->end(), U'\0') == cps->end());
    if (not_blank)
        NEPTUN_FUZZ_CHECK(
            !std::all_of(cps->begin(), cps->end(), neptun::fuzz::is_contract_white_space));
}

bool same_patch(const project_patch& a, const project_patch& b) {
    return a.name == b.name && a.set_description == b.set_description &&
           a.description == b.description && a.project_type == b.project_type &&
           a.programming_language == b.programming_language;
}

boost::json::object as_object(const project_patch& p) {
    boost::json::object o;
    if (p.name) o["name"] = *p.name;
    if (p.set_description) {
        if (p.description)
            o["description"] = *p.description;
        else
            o["description"] = nullptr;
    }
    if (p.project_type) o["project_type"] = *p.project_type;
    if (p.programming_language) o["programming_language"] = *p.programming_language;
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace neptun;
    auto body = fuzz::as_text(data, size);
    auto r = projects::validate_patch(body);
    NEPTUN_FUZZ_CHECK(r.patch.has_value() == r.errors.empty());
    // A field may be empty: it is the key as sent, and "" is a key.
    for (const auto& e : r.errors) NEPTUN_FUZZ_CHECK(!e.message.empty());

    // Boost.JSON's DOM parser with the validator's options is the reference for what is JSON.
    boost::json::parse_options opts;
    opts.max_depth = 64;
    boost::system::error_code ec;
    auto dom = boost::json::parse(body, ec, {}, opts);
    if (ec || !dom.is_object()) {
        // Not JSON, or not an object: one error about the body, nothing else.
        NEPTUN_FUZZ_CHECK(r.errors.size() == 1 && r.errors[0].field == "body");
        return 0;
    }
    // Errors name a member of the body or the body itself; an unknown member is an error.
    const auto& members = dom.get_object();
    for (const auto& e : r.errors)
        NEPTUN_FUZZ_CHECK(e.field == "body" || members.contains(e.field));
    for (const auto& m : members) {
        auto key = std::string_view(m.key().data(), m.key().size());
        if (key != "name" && key != "description" && key != "project_type" &&
            key != "programming_language")
            NEPTUN_FUZZ_CHECK(!r.patch);
    }
    if (!r.patch) return 0;

    const auto& p = *r.patch;
    NEPTUN_FUZZ_CHECK(p.name || p.set_description || p.project_type || p.programming_language);
    NEPTUN_FUZZ_CHECK(!p.description || p.set_description);
    if (p.name) check_text(*p.name, 1, projects::max_name_code_points, true);
    if (p.description) check_text(*p.description, 0, projects::max_description_code_points, false);
    if (p.project_type) NEPTUN_FUZZ_CHECK(is_static_name(*p.project_type, projects::project_types));
    if (p.programming_language)
        NEPTUN_FUZZ_CHECK(is_static_name(*p.programming_language, projects::programming_languages));
    // The members of the body are exactly the patch.
    NEPTUN_FUZZ_CHECK(members == as_object(p));

    // Written back as JSON, the patch validates to itself.
    auto again = projects::validate_patch(boost::json::serialize(as_object(p)));
    NEPTUN_FUZZ_CHECK(again.patch.has_value());
    NEPTUN_FUZZ_CHECK(same_patch(*again.patch, p));
    return 0;
}
