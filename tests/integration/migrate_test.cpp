// `neptun-api migrate` on real databases: creates what is missing, is a no-op the second
// time, keeps an existing Neptun database's extra columns and tables, refuses conflicts.
#include <boost/test/unit_test.hpp>

#include "support/stores.hpp"

using namespace neptun::test;

BOOST_AUTO_TEST_SUITE(migrate)

BOOST_AUTO_TEST_CASE(creates_the_schema_and_is_idempotent) {
    auto db = stores::fresh_database("mig_fresh");
    auto first = stores::migrate(db);
    BOOST_TEST(first.exit_code == 0, first.err);
    BOOST_TEST(first.out ==
               "migrate: created type project_type\nmigrate: created type programming_language\n"
               "migrate: created table neptun_user\nmigrate: created table neptun_user_project\n");
    auto second = stores::migrate(db);
    BOOST_TEST(second.exit_code == 0);
    BOOST_TEST(second.out == "migrate: schema is up to date\n");
    BOOST_TEST(stores::psql("SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum "
                            "WHERE enumtypid = 'programming_language'::regtype",
                            db) == "typescript,javascript,php,go,python,java,kotlin,ruby,elixir");
    BOOST_TEST(stores::psql("SELECT count(*) FROM information_schema.columns WHERE table_name = "
                            "'neptun_user_project'",
                            db) == "9");
}

BOOST_AUTO_TEST_CASE(keeps_an_existing_neptun_database_as_it_is) {
    auto db = stores::fresh_database("mig_existing");
    stores::psql(
        "CREATE TYPE project_type AS ENUM ('web-site', 'web-service', 'web-app');"
        "CREATE TYPE programming_language AS ENUM ('typescript', 'javascript', 'php', 'go', "
        "'python', 'java', 'kotlin', 'ruby', 'elixir');"
        "CREATE TABLE neptun_user (id serial PRIMARY KEY, primary_email text NOT NULL UNIQUE, "
        "github_token text, created_at timestamp DEFAULT now(), updated_at timestamp DEFAULT "
        "now());"
        "CREATE TABLE neptun_user_project (id serial PRIMARY KEY, name text NOT NULL, "
        "description text, type project_type NOT NULL, main_language programming_language NOT "
        "NULL, prompt_context jsonb, extra_flag boolean DEFAULT true, created_at timestamp "
        "DEFAULT now(), updated_at timestamp DEFAULT now(), neptun_user_id integer NOT NULL "
        "REFERENCES neptun_user(id) ON DELETE CASCADE);"
        "CREATE TABLE chat_conversation (id serial PRIMARY KEY);"
        "INSERT INTO neptun_user (primary_email, github_token) VALUES ('keep@me', 'gh');",
        db);
    auto r = stores::migrate(db);
    BOOST_TEST(r.exit_code == 0, r.err);
    BOOST_TEST(r.out == "migrate: schema is up to date\n");
    BOOST_TEST(stores::psql("SELECT github_token FROM neptun_user", db) == "gh");
    BOOST_TEST(stores::psql("SELECT count(*) FROM information_schema.columns WHERE column_name = "
                            "'extra_flag'",
                            db) == "1");
    BOOST_TEST(stores::psql("SELECT to_regclass('chat_conversation') IS NOT NULL", db) == "t");
}

BOOST_AUTO_TEST_CASE(refuses_conflicting_objects_and_changes_nothing) {
    auto db = stores::fresh_database("mig_conflict");
    stores::psql("CREATE TYPE project_type AS ENUM ('web-site', 'mobile-app');", db);
    auto r = stores::migrate(db);
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(
        r.err ==
        "neptun-api: migrate failed: enum project_type exists without the label 'web-service'\n");
    // Nothing was created: the transaction rolled back.
    BOOST_TEST(stores::psql("SELECT to_regclass('neptun_user') IS NULL", db) == "t");

    auto db2 = stores::fresh_database("mig_conflict_col");
    stores::migrate(db2);
    stores::psql("ALTER TABLE neptun_user_project ALTER COLUMN name TYPE varchar(10)", db2);
    auto r2 = stores::migrate(db2);
    BOOST_TEST(r2.exit_code == 1);
    BOOST_TEST(
        r2.err.find("column neptun_user_project.name is character varying(10), expected text") !=
        std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_unreachable_database_is_a_clear_error) {
    auto r =
        run_command({binary_path(), "migrate"},
                    {{"NEPTUN_DATABASE_URL",
                      "postgresql://postgres@127.0.0.1:" + std::to_string(free_port()) + "/x"}});
    BOOST_TEST(r.exit_code == 1);
    BOOST_TEST(r.err.starts_with("neptun-api: migrate failed: cannot connect to the database: "));
    BOOST_TEST(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

// The role's or database's statement_timeout (here 200 ms) does not cut migrate's own wait
// for another migrator short: it sets its own.
BOOST_AUTO_TEST_CASE(waits_for_another_migrator_past_a_short_statement_timeout) {
    auto db = stores::fresh_database("mig_timeout");
    stores::psql("ALTER DATABASE " + db + " SET statement_timeout = '200ms'", "postgres");
    child_process other({"/usr/bin/psql",
                         "-h",
                         "127.0.0.1",
                         "-p",
                         std::to_string(stores::pg_port()),
                         "-U",
                         "postgres",
                         "-d",
                         db,
                         "-v",
                         "ON_ERROR_STOP=1",
                         "-o",
                         "/dev/stderr",
                         "-c",
                         "SET statement_timeout = 0",
                         "-c",
                         "SELECT pg_advisory_lock(4242424242)",
                         "-c",
                         "SELECT 'locked'",
                         "-c",
                         "SELECT pg_sleep(3)"},
                        env_map{});
    BOOST_REQUIRE(other.wait_for_log("locked", 10s));
    auto started = std::chrono::steady_clock::now();
    auto r = stores::migrate(db);
    BOOST_TEST(r.exit_code == 0, r.err);
    BOOST_TEST((std::chrono::steady_clock::now() - started > 1500ms));
    BOOST_TEST(other.wait_exit(10s) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
