// Test support: a raw HTTP/1.1 client over a loopback socket, so tests can send exactly the
// bytes they mean (pipelines, broken framing, trickles) and read what comes back.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace neptun::test {

using namespace std::chrono_literals;

struct http_response {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    // The first value of a header (case-insensitive name), or "" if absent.
    std::string header(std::string_view name) const;
    bool has_header(std::string_view name) const;
    // One field of a `{"project":{...}}` body, for exact assertions on it: a string's text,
    // "null", a number's digits; "<absent>" when the body is not such JSON or lacks it.
    std::string project_field(std::string_view field) const;
};

using header_list = std::vector<std::pair<std::string, std::string>>;

// A response, or nothing (EOF, reset or timeout). Reaching into an absent one throws
// std::bad_optional_access, which fails the test case, where a plain std::optional's `->`
// would be undefined behaviour: `BOOST_TEST(http_request(...)->status == 200)` is safe.
class maybe_response : public std::optional<http_response> {
  public:
    using std::optional<http_response>::optional;
    maybe_response(std::optional<http_response> r) : std::optional<http_response>(std::move(r)) {}
    http_response* operator->() { return &value(); }
    const http_response* operator->() const { return &value(); }
    http_response& operator*() & { return value(); }
    const http_response& operator*() const& { return value(); }
};

std::string build_request(std::string_view method, std::string_view target,
                          const header_list& headers = {}, std::string_view body = {},
                          bool with_length = true);

class http_connection {
  public:
    explicit http_connection(std::uint16_t port);
    ~http_connection();
    http_connection(const http_connection&) = delete;
    http_connection& operator=(const http_connection&) = delete;

    bool ok() const { return fd_ >= 0; }
    void send(std::string_view bytes);
    // The next response, or nothing on EOF, reset or timeout. A response to HEAD has no body
    // whatever its Content-Length says: pass `to_head`.
    maybe_response read_response(std::chrono::milliseconds timeout = 10s, bool to_head = false);
    // True once the server has closed the connection (EOF or reset) within `timeout`.
    bool wait_closed(std::chrono::milliseconds timeout = 10s);
    void close();

  private:
    bool fill(std::chrono::steady_clock::time_point deadline);
    int fd_ = -1;
    std::string buffer_;
    bool eof_ = false;
};

// One request on a fresh connection.
maybe_response http_request(std::uint16_t port, std::string_view method, std::string_view target,
                            const header_list& headers = {}, std::string_view body = {});

}  // namespace neptun::test
