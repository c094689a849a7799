#include "neptun/http/conditional.hpp"

namespace neptun::http {
namespace {

// etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3)
bool is_etagc(unsigned char c) {
    return c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80;
}

bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

// Parses one field value into `out`; false when it is not a valid list.
bool parse_list(std::string_view v, precondition& out, bool& saw_star) {
    std::size_t i = 0;
    for (;;) {
        while (i < v.size() && (is_ows(v[i]) || v[i] == ',')) ++i;  // empty elements
        if (i == v.size()) return true;
        if (v[i] == '*') {
            saw_star = true;
            ++i;
        } else {
            entity_tag tag;
            if (v.compare(i, 2, "W/") == 0) {
                tag.weak = true;
                i += 2;
            }
            if (i >= v.size() || v[i] != '"') return false;
            auto start = ++i;
            while (i < v.size() && is_etagc(static_cast<unsigned char>(v[i]))) ++i;
            if (i >= v.size() || v[i] != '"') return false;
            tag.opaque = v.substr(start, i - start);
            ++i;
            out.tags.push_back(tag);
        }
        while (i < v.size() && is_ows(v[i])) ++i;
        if (i == v.size()) return true;
        if (v[i] != ',') return false;
    }
}

}  // namespace

precondition parse_precondition(std::span<const std::string_view> field_values) {
    precondition p;
    if (field_values.empty()) return p;
    bool saw_star = false;
    for (auto v : field_values) {
        if (!parse_list(v, p, saw_star)) {
            p.tags.clear();
            p.what = precondition::kind::malformed;
            return p;
        }
    }
    if (saw_star && p.tags.empty())
        p.what = precondition::kind::any;
    else if (saw_star || p.tags.empty())  // `*` among tags, or nothing but commas
        p.what = precondition::kind::malformed;
    else
        p.what = precondition::kind::tags;
    if (p.what == precondition::kind::malformed) p.tags.clear();
    return p;
}

bool matches_strong(const precondition& p, std::string_view current) {
    if (p.what == precondition::kind::any) return true;
    for (const auto& t : p.tags)
        if (!t.weak && t.opaque == current) return true;
    return false;
}

bool matches_weak(const precondition& p, std::string_view current) {
    if (p.what == precondition::kind::any) return true;
    for (const auto& t : p.tags)
        if (t.opaque == current) return true;
    return false;
}

// Our tags are 32 lowercase hex digits; any other can never match, and bytes that are not
// UTF-8 would make PostgreSQL refuse the text parameter.
bool could_be_ours(std::string_view opaque) {
    if (opaque.size() != 32) return false;
    for (char c : opaque)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::string strong_tag_list(const precondition& p) {
    std::string out;
    for (const auto& t : p.tags) {
        if (t.weak || !could_be_ours(t.opaque)) continue;
        if (!out.empty()) out += ' ';
        out += t.opaque;
    }
    return out;
}

std::string quote_tag(std::string_view opaque) {
    std::string out;
    out.reserve(opaque.size() + 2);
    out += '"';
    out += opaque;
    out += '"';
    return out;
}

}  // namespace neptun::http
