-- bench/sql/schema-fallback.sql -- a copy of CONTRACT.md §2, applied by bench/run.sh with
-- psql only when build/release/neptun-api does not exist yet (so the harness can be tried
-- against a peer before the server builds). Normally `neptun-api migrate` creates the schema.
CREATE TYPE project_type AS ENUM ('web-site', 'web-service', 'web-app');
CREATE TYPE programming_language AS ENUM ('typescript', 'javascript', 'php', 'go',
  'python', 'java', 'kotlin', 'ruby', 'elixir');
CREATE TABLE neptun_user (
  id serial PRIMARY KEY,
  primary_email text NOT NULL UNIQUE,
  created_at timestamp DEFAULT now(),
  updated_at timestamp DEFAULT now());
CREATE TABLE neptun_user_project (
  id serial PRIMARY KEY,
  name text NOT NULL,
  description text,
  type project_type NOT NULL,                       -- API field project_type
  main_language programming_language NOT NULL,      -- API field programming_language
  prompt_context jsonb,
  created_at timestamp DEFAULT now(),
  updated_at timestamp DEFAULT now(),
  neptun_user_id integer NOT NULL REFERENCES neptun_user(id) ON DELETE CASCADE);
