// The SQL the server runs, in one place: the schema `migrate` creates and the two
// statements of the request path. Timestamps are rendered by PostgreSQL from the UTC wall
// time the columns hold, so the output does not depend on any session TimeZone.
#pragma once

#include <string_view>

namespace neptun::projects::sql {

// Column order of both statements' results.
enum column { id, name, description, type, main_language, created_at, updated_at, user_id };

// $1 project id, $2 user id.
inline constexpr std::string_view select_project =
    R"(SELECT id, name, description, type::text, main_language::text,
       to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), neptun_user_id
  FROM neptun_user_project
 WHERE id = $1::int4 AND neptun_user_id = $2::int4)";

// $1 project id, $2 user id, $3 name or NULL, $4 whether to set description, $5 description,
// $6 type or NULL, $7 main_language or NULL. One statement: the ownership check and the
// write cannot be raced.
inline constexpr std::string_view update_project = R"(UPDATE neptun_user_project
   SET name = COALESCE($3::text, name),
       description = CASE WHEN $4::bool THEN $5::text ELSE description END,
       type = COALESCE($6::project_type, type),
       main_language = COALESCE($7::programming_language, main_language),
       updated_at = (now() AT TIME ZONE 'UTC')
 WHERE id = $1::int4 AND neptun_user_id = $2::int4
RETURNING id, name, description, type::text, main_language::text,
       to_char(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), neptun_user_id)";

}  // namespace neptun::projects::sql
