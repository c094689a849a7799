-- bench/sql/update.sql -- the ceiling for the update scenario: the statement neptun-api runs
-- for a PATCH with all four fields, one random user's own project per transaction.
-- pgbench -M prepared sends the -D variables (name, description, ...) as parameters, as the
-- server does. Variables: users (N), name, set_description, description, project_type,
-- programming_language. Keep it in step with src/projects/ if the server's SQL changes.
\set id random(1, :users)
UPDATE neptun_user_project
   SET name = COALESCE(:name, name),
       description = CASE WHEN :set_description THEN :description ELSE description END,
       type = COALESCE(:project_type, type),
       main_language = COALESCE(:programming_language, main_language),
       updated_at = (now() AT TIME ZONE 'UTC')
 WHERE id = :id AND neptun_user_id = :id
RETURNING id, name, description, type, main_language, created_at, updated_at, neptun_user_id;
