#include "support/http_client.hpp"

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace neptun::test {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

std::string http_response::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

std::string http_response::project_field(std::string_view field) const {
    boost::system::error_code ec;
    auto doc = boost::json::parse(body, ec);
    if (ec || !doc.is_object()) return "<absent>";
    auto* project = doc.as_object().if_contains("project");
    if (!project || !project->is_object()) return "<absent>";
    auto* v = project->as_object().if_contains(field);
    if (!v) return "<absent>";
    if (v->is_string()) return std::string(v->as_string());
    return boost::json::serialize(*v);
}

bool http_response::has_header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return true;
    return false;
}

std::string build_request(std::string_view method, std::string_view target,
                          const header_list& headers, std::string_view body, bool with_length) {
    std::string out;
    out += method;
    out += ' ';
    out += target;
    out += " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [k, v] : headers) {
        out += k;
        out += ": ";
        out += v;
        out += "\r\n";
    }
    if (with_length && (!body.empty() || method == "PATCH"))
        out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    out += "\r\n";
    out += body;
    return out;
}

http_connection::http_connection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

http_connection::~http_connection() {
    close();
}

void http_connection::close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

void http_connection::send(std::string_view bytes) {
    while (!bytes.empty() && fd_ >= 0) {
        ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

bool http_connection::fill(std::chrono::steady_clock::time_point deadline) {
    if (fd_ < 0 || eof_) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
        eof_ = true;
        return false;
    }
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
}

maybe_response http_connection::read_response(std::chrono::milliseconds timeout, bool to_head) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto end = buffer_.find("\r\n\r\n");
        if (end != std::string::npos) {
            http_response r;
            std::string_view head(buffer_.data(), end);
            auto line_end = head.find("\r\n");
            auto status_line = head.substr(0, line_end);
            auto sp = status_line.find(' ');
            if (sp == std::string_view::npos) return std::nullopt;
            r.status = std::atoi(std::string(status_line.substr(sp + 1, 3)).c_str());
            std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
            while (pos < head.size()) {
                auto next = head.find("\r\n", pos);
                if (next == std::string_view::npos) next = head.size();
                auto line = head.substr(pos, next - pos);
                auto colon = line.find(':');
                if (colon != std::string_view::npos) {
                    auto value = line.substr(colon + 1);
                    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
                    r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
                }
                pos = next + 2;
            }
            std::size_t length = 0;
            if (r.has_header("Content-Length") && !to_head)
                length = std::stoul(r.header("Content-Length"));
            while (buffer_.size() < end + 4 + length)
                if (!fill(deadline)) return std::nullopt;
            r.body = buffer_.substr(end + 4, length);
            buffer_.erase(0, end + 4 + length);
            return r;
        }
        if (!fill(deadline)) return std::nullopt;
    }
}

bool http_connection::wait_closed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        fill(deadline);
    }
    return true;
}

maybe_response http_request(std::uint16_t port, std::string_view method, std::string_view target,
                            const header_list& headers, std::string_view body) {
    http_connection c(port);
    if (!c.ok()) return std::nullopt;
    c.send(build_request(method, target, headers, body));
    return c.read_response();
}

}  // namespace neptun::test
