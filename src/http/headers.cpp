#include "neptun/http/headers.hpp"

#include "neptun/net/text.hpp"

#include <cctype>

namespace neptun::http {
namespace {

using net::iequals;

// cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
bool is_cookie_octet(unsigned char c) {
    return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
           (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

struct media_range {
    std::string_view type, subtype;
    double q = 1.0;
    bool valid = false;
};

bool parse_q(std::string_view v, double& q) {
    // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    if (v.empty() || (v[0] != '0' && v[0] != '1')) return false;
    if (v.size() > 1 && (v[1] != '.' || v.size() > 5)) return false;
    double value = v[0] - '0', scale = 0.1;
    for (std::size_t i = 2; i < v.size(); ++i) {
        if (!std::isdigit(static_cast<unsigned char>(v[i]))) return false;
        value += (v[i] - '0') * scale;
        scale /= 10;
    }
    if (value > 1.0) return false;
    q = value;
    return true;
}

media_range parse_range(std::string_view element) {
    media_range r;
    auto semi = element.find(';');
    auto type = net::trim_ows(element.substr(0, semi));
    auto slash = type.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == type.size()) return r;
    r.type = type.substr(0, slash);
    r.subtype = type.substr(slash + 1);
    if (r.type == "*" && r.subtype != "*") return r;
    while (semi != std::string_view::npos) {
        element.remove_prefix(semi + 1);
        semi = element.find(';');
        auto param = net::trim_ows(element.substr(0, semi));
        auto eq = param.find('=');
        if (eq == std::string_view::npos) continue;
        if (iequals(net::trim_ows(param.substr(0, eq)), "q") &&
            !parse_q(net::trim_ows(param.substr(eq + 1)), r.q))
            return r;
    }
    r.valid = true;
    return r;
}

}  // namespace

session_cookie find_session_cookie(std::span<const std::string_view> cookie_headers,
                                   std::string_view name) {
    for (auto header : cookie_headers) {
        while (!header.empty()) {
            auto semi = header.find(';');
            auto pair = net::trim_ows(header.substr(0, semi));
            header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
            auto eq = pair.find('=');
            if (eq == std::string_view::npos || net::trim_ows(pair.substr(0, eq)) != name) continue;
            auto value = net::trim_ows(pair.substr(eq + 1));
            if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
                value = value.substr(1, value.size() - 2);
            if (value.empty() || value.size() > max_token_length)
                return {cookie_status::malformed, {}};
            for (unsigned char c : value)
                if (!is_cookie_octet(c)) return {cookie_status::malformed, {}};
            return {cookie_status::ok, value};
        }
    }
    return {cookie_status::missing, {}};
}

bool accepts_json(std::span<const std::string_view> accept_headers) {
    int best_specificity = 0;
    double best_q = 0;
    bool any = false;
    for (auto header : accept_headers) {
        while (!header.empty()) {
            auto comma = header.find(',');
            auto element = net::trim_ows(header.substr(0, comma));
            header =
                comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
            if (element.empty()) continue;
            any = true;
            auto r = parse_range(element);
            if (!r.valid) continue;
            int specificity = 0;
            if (iequals(r.type, "application") && iequals(r.subtype, "json"))
                specificity = 3;
            else if (iequals(r.type, "application") && r.subtype == "*")
                specificity = 2;
            else if (r.type == "*" && r.subtype == "*")
                specificity = 1;
            if (specificity == 0) continue;
            // The most specific range decides; among equals, the most generous q.
            if (specificity > best_specificity ||
                (specificity == best_specificity && r.q > best_q)) {
                best_specificity = specificity;
                best_q = r.q;
            }
        }
    }
    if (!any) return true;  // absent or empty: anything goes
    return best_specificity > 0 && best_q > 0;
}

bool is_json_content_type(std::string_view value) {
    auto type = net::trim_ows(value.substr(0, value.find(';')));
    return iequals(type, "application/json");
}

}  // namespace neptun::http
