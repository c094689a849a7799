-- bench/sql/select.sql -- the ceiling for the read and mixed scenarios: the statement
-- neptun-api runs for a GET (src/projects/sql.cpp, select_project: the row and its ETag),
-- one random user's own project per transaction.
-- Variable: users (N). Keep it in step with src/projects/sql.cpp.
\set id random(1, :users)
SELECT r.*, md5(row_to_json(r)::text) AS etag FROM (SELECT id, name, description,
       type::text AS project_type, main_language::text AS programming_language,
       to_char(created_at, 'YYYY-MM-DD"T"HH24' || chr(58) || 'MI' || chr(58) || 'SS.MS"Z"') AS created_at,
       to_char(updated_at, 'YYYY-MM-DD"T"HH24' || chr(58) || 'MI' || chr(58) || 'SS.MS"Z"') AS updated_at, neptun_user_id
  FROM neptun_user_project
 WHERE id = :id AND neptun_user_id = :id) r;
