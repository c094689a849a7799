#include "neptun/net/connection_rules.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace neptun::net {

namespace bhttp = boost::beast::http;
namespace asio = boost::asio;

verdict after_header(const header_facts& f) {
    const bool parsed = f.read == header_read::complete || f.read == header_read::body_too_large;
    if (parsed && f.protocol_error)
        return {.step = next_step::refuse,
                .status = bhttp::status::bad_request,
                .message = *f.protocol_error,
                .framing_refusal = true};
    switch (f.read) {
        case header_read::too_large:
            return {.step = next_step::refuse,
                    .status = bhttp::status::request_header_fields_too_large,
                    .message = "Request header fields too large"};
        case header_read::body_too_large:
            // Beast checks a declared length with the header; the route answers first.
            if (f.routed_early) return {.step = next_step::answer_early, .label_from_route = true};
            return {.step = next_step::refuse,
                    .status = bhttp::status::payload_too_large,
                    .message = "Payload too large",
                    .label_from_route = true};
        case header_read::timed_out:
            return {.step = next_step::close, .deadline_close = true};
        case header_read::refused:
            return {.step = next_step::refuse,
                    .status = bhttp::status::bad_request,
                    .message = f.refusal};
        case header_read::peer_gone:
            return {.step = next_step::close};
        case header_read::malformed:
            return {.step = next_step::refuse,
                    .status = bhttp::status::bad_request,
                    .message = "Malformed HTTP request"};
        case header_read::complete:
            break;
    }
    if (f.draining && !f.routed_early)
        return {.step = next_step::refuse,
                .status = bhttp::status::service_unavailable,
                .message = "Server is shutting down",
                .label_from_route = true};
    if (f.routed_early)
        // A body, or a request pipelined behind it, is never read: keep only a bodiless one.
        return {.step = next_step::answer_early,
                .keep = f.keep_alive && !f.has_body && !f.closing && !f.draining,
                .label_from_route = true};
    if (!f.body_done) return {.step = next_step::read_body, .label_from_route = true};
    return {.step = next_step::handle, .label_from_route = true};
}

verdict after_body(body_read read, bool fields_grew) {
    switch (read) {
        case body_read::timed_out:
            return {.step = next_step::close, .deadline_close = true};
        case body_read::peer_gone:
            return {.step = next_step::close};
        case body_read::too_large:
            return {.step = next_step::refuse,
                    .status = bhttp::status::payload_too_large,
                    .message = "Payload too large",
                    .label_from_route = true};
        case body_read::malformed:
            return {.step = next_step::refuse,
                    .status = bhttp::status::bad_request,
                    .message = "Malformed request body",
                    .label_from_route = true};
        case body_read::trailers:  // seen by the chunk callback, before Beast merged them
        case body_read::complete:
            break;
    }
    // Beast merges trailer fields into the header: a field a proxy never saw must not count.
    if (read == body_read::trailers || fields_grew)
        return {.step = next_step::refuse,
                .status = bhttp::status::bad_request,
                .message = "Trailer fields are not accepted",
                .framing_refusal = true,
                .label_from_route = true};
    return {.step = next_step::handle, .label_from_route = true};
}

bool is_peer_gone(const boost::system::error_code& ec) {
    return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe;
}

header_read classify_header_read(const boost::system::error_code& ec, const char* refusal) {
    if (!ec) return header_read::complete;
    if (ec == bhttp::error::header_limit) return header_read::too_large;
    if (ec == bhttp::error::body_limit) return header_read::body_too_large;
    if (ec == boost::beast::error::timeout) return header_read::timed_out;
    if (refusal) return header_read::refused;
    if (is_peer_gone(ec)) return header_read::peer_gone;
    return header_read::malformed;
}

body_read classify_body_read(const boost::system::error_code& ec, bool trailers) {
    if (!ec) return body_read::complete;
    if (ec == boost::beast::error::timeout) return body_read::timed_out;
    if (is_peer_gone(ec)) return body_read::peer_gone;
    if (ec == bhttp::error::body_limit) return body_read::too_large;
    if (trailers) return body_read::trailers;
    return body_read::malformed;
}

}  // namespace neptun::net
