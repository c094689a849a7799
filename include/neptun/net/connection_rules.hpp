// What the connection loop does next with a request, decided from facts about its header
// and body: pure rules, so that reading, routing, the drain and keep-alive are decided in
// one place and unit-tested (tests/unit/net/connection_rules_test.cpp) apart from the I/O.
#pragma once

#include <optional>
#include <string_view>

#include <boost/beast/http/status.hpp>
#include <boost/system/error_code.hpp>

namespace neptun::net {

// How reading the header ended (src/net/server.cpp's read_header, classified).
enum class header_read {
    complete,        // the whole header is parsed
    too_large,       // over the byte or field-line limit: 431
    body_too_large,  // a declared Content-Length over the body limit; the header is parsed
    timed_out,       // the header deadline passed: close without an answer
    peer_gone,       // the client closed or reset the connection
    refused,         // a protocol 400 of our own (obs-fold, a ClientHello, …)
    malformed,       // anything else Beast could not parse: 400
};

// How reading the body ended.
enum class body_read {
    complete,
    timed_out,
    peer_gone,
    too_large,  // over the body limit: 413
    trailers,   // a trailer section: 400 (CONTRACT.md §1.3)
    malformed,  // broken chunk framing, a bad chunk extension or line: 400
};

struct header_facts {
    header_read read = header_read::complete;
    std::string_view refusal;                        // for `refused`: its message
    std::optional<std::string_view> protocol_error;  // framing or Host rule broken (a 400)
    bool routed_early = false;                       // the router answers by itself (404, 405)
    bool draining = false;    // this listener's drain began: no new request is handled
    bool closing = false;     // from SIGTERM on, every response says close
    bool keep_alive = false;  // what the request asks for (version and Connection)
    bool has_body = false;    // Content-Length or chunked
    bool body_done = false;   // the parser has the whole message already
};

enum class next_step {
    close,         // close without an answer
    refuse,        // answer `status` with `message`, then close
    answer_early,  // send the router's own answer; close unless `keep`
    read_body,     // read the body, then judge it with `after_body`
    handle,        // run the handler
};

struct verdict {
    next_step step = next_step::close;
    boost::beast::http::status status{};
    std::string_view message{};
    bool keep = false;              // answer_early: the connection stays open afterwards
    bool deadline_close = false;    // counts in neptun_deadline_closes_total
    bool framing_refusal = false;   // counts in neptun_framing_refusals_total
    bool label_from_route = false;  // the metrics label is the route's (else "unmatched")
};

// The rules after the header, in the contract's order: protocol 400s, then 431, then the
// route (404/405) before 413, then the drain's 503, then the body or the handler.
verdict after_header(const header_facts& f);

// The rules after the body was read (a request whose body the parser had already is
// `complete`). `fields_grew`: the parser merged trailer fields into the header.
verdict after_body(body_read read, bool fields_grew);

// Whether a handled request's connection stays open for the next one.
inline bool keep_after_response(bool keep_alive, bool draining, bool closing) {
    return keep_alive && !draining && !closing;
}

// The client closed, reset or went away: nothing to answer.
bool is_peer_gone(const boost::system::error_code& ec);

// The outcome of read_header (its error and its own refusal message), classified.
header_read classify_header_read(const boost::system::error_code& ec, const char* refusal);

// The error of a finished body read, classified (`trailers`: the chunk callback saw them).
body_read classify_body_read(const boost::system::error_code& ec, bool trailers);

}  // namespace neptun::net
