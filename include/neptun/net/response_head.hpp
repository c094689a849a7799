// A response's status line and header fields as bytes, written by us rather than Beast's
// serializer: the connection loop sends these and the body in one gather write.
#pragma once

#include <string>
#include <string_view>

#include "neptun/net/server.hpp"

namespace neptun::net {

// What the connection loop adds to every response beside the handler's own fields.
struct response_framing {
    unsigned version = 11;  // the request's: 10 or 11
    bool keep_alive = true;
    bool head = false;            // a HEAD request: the body's length, no body
    std::string_view date;        // IMF-fixdate
    std::string_view request_id;  // X-Request-Id
};

// Appends the head of `res` to `out`: the status line, the handler's fields (any
// Content-Length, Transfer-Encoding, Connection, Date or X-Request-Id of its own are
// replaced by ours), Date, X-Request-Id, Connection where the version's default is not
// what we do, and Content-Length (none on 1xx, 204 and 304, which have no body; on HEAD
// the length the body would have). Returns whether the body is to be sent after it.
bool append_response_head(std::string& out, const response& res, const response_framing& f);

}  // namespace neptun::net
