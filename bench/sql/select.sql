-- bench/sql/select.sql -- the ceiling for the read and mixed scenarios: the statement
-- neptun-api runs for a GET, one random user's own project per transaction.
-- Variable: users (N). Keep it in step with src/projects/ if the server's SQL changes.
\set id random(1, :users)
SELECT id, name, description, type, main_language, created_at, updated_at, neptun_user_id
  FROM neptun_user_project
 WHERE id = :id AND neptun_user_id = :id;
