// One route table per listener: path patterns with {param} segments and their methods.
// An unknown path is a 404, a known path with another method a 405 with Allow.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/verb.hpp>

#include "neptun/net/server.hpp"

namespace neptun::http {

using verb = boost::beast::http::verb;

struct route_def {
    std::string_view pattern;  // e.g. "/api/users/{user_id}/projects/{project_id}"
    std::vector<verb> methods;
    std::string_view label;  // the route's name in the request metrics
};

struct route_match {
    enum class kind { found, no_route, wrong_method };
    kind result = kind::no_route;
    int route = -1;  // index into the table
    net::route_label label = net::route_label::unmatched;
    std::array<std::string_view, 4> params{};  // raw segments, in pattern order
    std::string_view allow;                    // for wrong_method: "GET, PATCH"
};

class router {
  public:
    explicit router(std::vector<route_def> routes);
    // `target` is the request-target; a query string is ignored.
    route_match find(std::string_view target, verb method) const;
    // The connection loop's view: found routes go on to the handler, others answer now.
    net::routed decide(std::string_view target, verb method) const;

  private:
    struct compiled {
        std::vector<std::string_view> segments;  // "{...}" marks a parameter
        std::vector<verb> methods;
        std::string allow;
        net::route_label label;
    };
    std::vector<compiled> routes_;
};

}  // namespace neptun::http
