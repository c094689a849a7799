#include "neptun/projects/sql.hpp"

namespace neptun::projects::sql {
namespace {

// The representation as served, with the names the API uses; `p` qualifies the columns.
std::string projection(std::string_view p) {
    std::string q(p);
    return q + "id, " + q + "name, " + q + "description, " + q + "type::text AS project_type, " +
           q + "main_language::text AS programming_language, to_char(" + q +
           R"(created_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at, to_char()" + q +
           R"(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at, )" + q + "neptun_user_id";
}

// The ETag: a digest of exactly what is served (row_to_json is unambiguous: a NULL and an
// empty description differ), so equal representations get equal tags and any change to
// what a client sees changes it, also when two updates share one transaction's now().
std::string etag_of(std::string_view row) {
    return "md5(row_to_json(" + std::string(row) + ")::text)";
}

constexpr std::string_view owned_row = " WHERE id = $1::int4 AND neptun_user_id = $2::int4";

constexpr std::string_view assignments = R"(
   SET name = COALESCE($3::text, name),
       description = CASE WHEN $4::bool THEN $5::text ELSE description END,
       type = COALESCE($6::project_type, type),
       main_language = COALESCE($7::programming_language, main_language),
       updated_at = (now() AT TIME ZONE 'UTC'))";

}  // namespace

const std::string& select_project() {
    static const std::string s = "SELECT r.*, " + etag_of("r") + " AS etag FROM (SELECT " +
                                 projection("") + " FROM neptun_user_project" +
                                 std::string(owned_row) + ") r";
    return s;
}

const std::string& update_project() {
    static const std::string s = "WITH r AS (UPDATE neptun_user_project" +
                                 std::string(assignments) + std::string(owned_row) + " RETURNING " +
                                 projection("") + ") SELECT r.*, " + etag_of("r") +
                                 " AS etag FROM r";
    return s;
}

const std::string& update_project_if_match() {
    // FOR UPDATE reads the newest committed version and holds it, so the tag compared is
    // the one the UPDATE replaces; an absent (or not owned) row yields no row at all: 404.
    static const std::string s =
        "WITH cur AS (SELECT c.id, " + etag_of("c") + " AS etag FROM (SELECT " + projection("") +
        " FROM neptun_user_project" + std::string(owned_row) +
        " FOR UPDATE) c), "
        "u AS (UPDATE neptun_user_project p" +
        std::string(assignments) +
        " FROM cur WHERE p.id = cur.id AND cur.etag = ANY(string_to_array($8::text, ' '))"
        " RETURNING " +
        projection("p.") + ") SELECT u.*, " + etag_of("u") +
        " AS etag, true AS written FROM u UNION ALL SELECT NULL::int4, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL::int4, cur.etag, false FROM cur WHERE NOT EXISTS (SELECT 1 FROM u)";
    return s;
}

}  // namespace neptun::projects::sql
