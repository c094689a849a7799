// The Neptun web app's sessions, read from Redis: `GET <prefix><token>` and the `user.id`
// of the JSON value. Used by the project use case to authenticate each request.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "neptun/redis/client.hpp"

namespace neptun::redis {

enum class session_status {
    ok,           // user_id is set
    unknown,      // no such key (never set, expired, deleted)
    invalid,      // the value is not a session we can read
    unavailable,  // Redis down, timing out or answering an error: a 503, never a 401
};

struct session_lookup {
    session_status status = session_status::unavailable;
    std::int64_t user_id = 0;
    // What the caller should log, with the request's id, when the lookup met a value or a
    // reply it could not use: the event, one field and its value. Empty otherwise.
    std::string_view event{};
    std::string_view field{};
    std::string detail{};
};

// The positive integer `user.id` of a session value, or nothing.
std::optional<std::int64_t> user_id_from_session(std::string_view json);

class session_store {
  public:
    session_store(client& redis, std::string prefix) : redis_(redis), prefix_(std::move(prefix)) {}
    // `token` has been checked by the cookie parser; it is used only as part of the key.
    // Waits at most until `deadline` (and the client's command timeout): then unavailable.
    boost::asio::awaitable<session_lookup> user_for(
        std::string_view token, std::chrono::steady_clock::time_point deadline =
                                    std::chrono::steady_clock::time_point::max());

  private:
    client& redis_;
    std::string prefix_;
};

}  // namespace neptun::redis
