-- bench/sql/update.sql -- the ceiling for the update scenario: the statement neptun-api runs
-- for a PATCH with all four fields (src/projects/sql.cpp, update_project: the write and the
-- ETag of the row written), one random user's own project per transaction.
-- pgbench -M prepared sends the -D variables (name, description, ...) as parameters, as the
-- server does. Variables: users (N), name, set_description, description, project_type,
-- programming_language. Keep it in step with src/projects/sql.cpp. (The colons of the
-- to_char format are chr(58): pgbench would take :MI and :SS for variables.)
\set id random(1, :users)
WITH r AS (UPDATE neptun_user_project
   SET name = COALESCE(:name, name),
       description = CASE WHEN :set_description THEN :description ELSE description END,
       type = COALESCE(:project_type, type),
       main_language = COALESCE(:programming_language, main_language),
       updated_at = (now() AT TIME ZONE 'UTC')
 WHERE id = :id AND neptun_user_id = :id
 RETURNING id, name, description, type::text AS project_type,
       main_language::text AS programming_language,
       to_char(created_at, 'YYYY-MM-DD"T"HH24' || chr(58) || 'MI' || chr(58) || 'SS.MS"Z"') AS created_at,
       to_char(updated_at, 'YYYY-MM-DD"T"HH24' || chr(58) || 'MI' || chr(58) || 'SS.MS"Z"') AS updated_at, neptun_user_id)
SELECT r.*, md5(row_to_json(r)::text) AS etag FROM r;
