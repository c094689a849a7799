#include "neptun/http/router.hpp"

#include <algorithm>

#include <boost/beast/http.hpp>

#include "neptun/http/errors.hpp"

namespace neptun::http {
namespace {

constexpr std::size_t max_segments = 16;

// Splits "/a/b/c" into {"a","b","c"}; false for a path that does not start with '/' or has
// more segments than `out` holds (no route of ours has that many).
template <typename Out>
bool split_path(std::string_view path, Out& out, std::size_t& count) {
    count = 0;
    if (path.empty() || path.front() != '/') return false;
    path.remove_prefix(1);
    for (;;) {
        if (count == out.size()) return false;
        auto slash = path.find('/');
        out[count++] = path.substr(0, slash);
        if (slash == std::string_view::npos) return true;
        path.remove_prefix(slash + 1);
    }
}

bool is_param(std::string_view segment) {
    return segment.size() >= 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

router::router(std::vector<route_def> routes) {
    for (auto& r : routes) {
        compiled c;
        std::array<std::string_view, max_segments> parts;
        std::size_t n = 0;
        split_path(r.pattern, parts, n);
        c.segments.assign(parts.begin(), parts.begin() + static_cast<std::ptrdiff_t>(n));
        c.methods = r.methods;
        for (auto m : c.methods) {
            if (!c.allow.empty()) c.allow += ", ";
            c.allow += std::string(boost::beast::http::to_string(m));
        }
        c.label = net::route_label::named(r.label);
        routes_.push_back(std::move(c));
    }
}

route_match router::find(std::string_view target, verb method) const {
    route_match m;
    auto path = target.substr(0, target.find('?'));
    // A fixed array: the request path costs no allocation.
    std::array<std::string_view, max_segments> segments;
    std::size_t count = 0;
    if (!split_path(path, segments, count)) return m;
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        const auto& r = routes_[i];
        if (r.segments.size() != count) continue;
        std::array<std::string_view, 4> params{};
        std::size_t np = 0;
        bool ok = true;
        for (std::size_t s = 0; s < count && ok; ++s) {
            if (is_param(r.segments[s])) {
                if (segments[s].empty() || np == params.size())
                    ok = false;
                else
                    params[np++] = segments[s];
            } else {
                ok = r.segments[s] == segments[s];
            }
        }
        if (!ok) continue;
        m.route = static_cast<int>(i);
        m.label = r.label;
        m.params = params;
        if (std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end()) {
            m.result = route_match::kind::wrong_method;
            m.allow = r.allow;
        } else {
            m.result = route_match::kind::found;
        }
        return m;
    }
    return m;
}

net::routed router::decide(std::string_view target, verb method) const {
    auto m = find(target, method);
    net::routed r;
    r.label = m.label;
    r.route = m.route;
    for (std::size_t i = 0; i < m.params.size(); ++i)
        if (!m.params[i].empty())
            r.params[i] = {static_cast<std::uint32_t>(m.params[i].data() - target.data()),
                           static_cast<std::uint32_t>(m.params[i].size())};
    if (m.result == route_match::kind::no_route) {
        r.early = error_response(problem::not_found);
    } else if (m.result == route_match::kind::wrong_method) {
        r.early = error_response(problem::method_not_allowed);
        r.early->set(boost::beast::http::field::allow, m.allow);
    }
    return r;
}

}  // namespace neptun::http
