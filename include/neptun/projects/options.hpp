// What the project use case is told: its Redis client's and PostgreSQL pool's options and
// its own rules. The configuration sets these fields directly.
#pragma once

#include <string>

#include "neptun/pg/options.hpp"
#include "neptun/redis/client.hpp"

namespace neptun::projects {

struct service_options {
    redis::options redis;
    pg::options pg;
    std::string session_prefix = "neptun:session:";
    bool require_if_match = false;  // 428 for a PATCH without If-Match
};

}  // namespace neptun::projects
