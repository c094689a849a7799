#include "neptun/net/response_head.hpp"

#include <charconv>

#include "neptun/net/protocol.hpp"

namespace neptun::net {
namespace {

void append_decimal(std::string& out, std::uint64_t n) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, r.ptr);
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name);
    out.append(": ", 2);
    out.append(value);
    out.append("\r\n", 2);
}

bool ours(const response::value_type& f) {
    switch (f.name()) {
        case http::field::content_length:
        case http::field::transfer_encoding:
        case http::field::connection:
        case http::field::date:
            return true;
        case http::field::unknown:  // X-Request-Id is not one of Beast's known fields
            return beast::iequals(f.name_string(), request_id_field);
        default:
            return false;
    }
}

}  // namespace

bool append_response_head(std::string& out, const response& res, const response_framing& f) {
    const unsigned code = res.result_int();
    out.append(f.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
    append_decimal(out, code);
    out += ' ';
    auto reason = res.reason();
    out.append(reason.empty() ? std::string_view(http::obsolete_reason(res.result()))
                              : std::string_view(reason));
    out.append("\r\n", 2);
    for (const auto& field : res)
        if (!ours(field)) append_field(out, field.name_string(), field.value());
    append_field(out, "Date", f.date);
    append_field(out, request_id_field, f.request_id);
    if (!f.keep_alive)
        out.append("Connection: close\r\n");
    else if (f.version == 10)
        out.append("Connection: keep-alive\r\n");
    const bool bodiless = code < 200 || code == 204 || code == 304;
    if (!bodiless) {
        out.append("Content-Length: ");
        append_decimal(out, res.body().size());
        out.append("\r\n", 2);
    }
    out.append("\r\n", 2);
    return !bodiless && !f.head && !res.body().empty();
}

}  // namespace neptun::net
