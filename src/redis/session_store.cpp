#include "neptun/redis/session_store.hpp"

#include <boost/json.hpp>

namespace neptun::redis {

std::optional<std::int64_t> user_id_from_session(std::string_view json) {
    unsigned char scratch[4096];
    boost::json::monotonic_resource mr(scratch, sizeof scratch);
    boost::json::error_code ec;
    auto value = boost::json::parse(json, ec, &mr);
    if (ec || !value.is_object()) return std::nullopt;
    const auto* user = value.as_object().if_contains("user");
    if (!user || !user->is_object()) return std::nullopt;
    const auto* id = user->as_object().if_contains("id");
    if (!id) return std::nullopt;
    if (id->is_int64() && id->get_int64() > 0) return id->get_int64();
    if (id->is_uint64() && id->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<std::int64_t>(id->get_uint64());
    return std::nullopt;
}

boost::asio::awaitable<session_lookup> session_store::user_for(
    std::string_view token, std::chrono::steady_clock::time_point deadline) {
    auto* cache = redis_.cache();
    std::optional<session_cache::ticket> ticket;
    if (cache) {
        auto now = std::chrono::steady_clock::now();
        if (auto id = cache->find(token, now)) co_return session_lookup{session_status::ok, *id};
        ticket = cache->begin(now);  // before the GET is sent: see session_cache.hpp
    }
    // The key, in this frame unless it is unusually long: no allocation per lookup.
    char inline_key[256];
    std::string long_key;
    std::string_view key;
    if (prefix_.size() + token.size() <= sizeof inline_key) {
        prefix_.copy(inline_key, prefix_.size());
        token.copy(inline_key + prefix_.size(), token.size());
        key = {inline_key, prefix_.size() + token.size()};
    } else {
        long_key.append(prefix_).append(token);
        key = long_key;
    }
    auto rep = co_await redis_.async_get(key, deadline);
    switch (rep.type) {
        case reply::kind::nil:
            co_return session_lookup{session_status::unknown, 0};
        case reply::kind::unavailable:
            co_return session_lookup{session_status::unavailable, 0};
        case reply::kind::error:
        case reply::kind::integer:
            // e.g. WRONGTYPE for a key that is not a string; LOADING or NOAUTH are outages.
            if (rep.value.starts_with("WRONGTYPE"))
                co_return session_lookup{session_status::invalid, 0, "session_unreadable", "reason",
                                         "not a string value"};
            // The client keeps only the error's first word: the rest may echo the key.
            co_return session_lookup{session_status::unavailable, 0, "redis_error_reply", "reply",
                                     std::move(rep.value)};
        case reply::kind::string:
            break;
    }
    auto id = user_id_from_session(rep.value);
    if (!id)
        co_return session_lookup{session_status::invalid, 0, "session_unreadable", "reason",
                                 "no integer user.id"};
    if (ticket) {
        // The TTL, read after the value: the ticket is still open, so a change in between
        // voids it. Only this first lookup of a session pays the second round trip.
        auto ttl = co_await redis_.async_pttl(key, deadline);
        if (ttl.type == reply::kind::integer) cache->offer(*ticket, token, *id, ttl.number);
    }
    co_return session_lookup{session_status::ok, *id};
}

}  // namespace neptun::redis
