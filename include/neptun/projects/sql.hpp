// The SQL the server runs, in one place: the statements of the request path and the one
// definition of a project's ETag. Timestamps are rendered by PostgreSQL from the UTC wall
// time the columns hold, so the output does not depend on any session TimeZone.
#pragma once

#include <string>
#include <string_view>

namespace neptun::projects::sql {

// Column order of every statement's result: the served representation, then its ETag;
// the conditional update adds whether it wrote.
enum column {
    id,
    name,
    description,
    type,
    main_language,
    created_at,
    updated_at,
    user_id,
    etag,
    written
};

// $1 project id, $2 user id.
const std::string& select_project();

// $1 project id, $2 user id, $3 name or NULL, $4 whether to set description, $5 description,
// $6 type or NULL, $7 main_language or NULL. One statement: the ownership check and the
// write cannot be raced.
const std::string& update_project();

// update_project's parameters, then $8: the If-Match entity tags (opaque parts, strong
// only) joined by spaces. The row is locked, its current ETag compared, and written only on
// a match, all in the one statement; it returns the written row (written = true), the
// current ETag alone (written = false: 412), or no row (404).
const std::string& update_project_if_match();

}  // namespace neptun::projects::sql
