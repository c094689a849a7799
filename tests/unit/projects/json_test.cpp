// The project as the API shows it (CONTRACT §1, 200).
#include <boost/test/unit_test.hpp>

#include <string>

#include "neptun/projects/json.hpp"

namespace {
using neptun::projects::encode_project;
using neptun::projects::project_row;
}  // namespace

BOOST_AUTO_TEST_SUITE(projects_json)

BOOST_AUTO_TEST_CASE(full_row_as_in_the_contract) {
    project_row row;
    row.id = 123;
    row.name = "Updated Project Name";
    row.description = "Updated project description";
    row.project_type = "web-site";
    row.programming_language = "typescript";
    row.created_at = "2025-02-16T17:42:11.000Z";
    row.updated_at = "2025-02-16T18:42:11.000Z";
    row.neptun_user_id = 456;
    BOOST_TEST(encode_project(row) ==
               R"({"project":{"id":123,"name":"Updated Project Name",)"
               R"("description":"Updated project description","project_type":"web-site",)"
               R"("programming_language":"typescript","created_at":"2025-02-16T17:42:11.000Z",)"
               R"("updated_at":"2025-02-16T18:42:11.000Z","neptun_user_id":456}})");
}

BOOST_AUTO_TEST_CASE(unset_description_and_timestamps_are_null) {
    project_row row;
    row.id = 2147483647;
    row.name = "p";
    row.project_type = "web-app";
    row.programming_language = "elixir";
    row.updated_at = "2025-02-16T18:42:11.000Z";
    row.neptun_user_id = 1;
    BOOST_TEST(encode_project(row) ==
               R"({"project":{"id":2147483647,"name":"p","description":null,)"
               R"("project_type":"web-app","programming_language":"elixir","created_at":null,)"
               R"("updated_at":"2025-02-16T18:42:11.000Z","neptun_user_id":1}})");
}

BOOST_AUTO_TEST_CASE(empty_description_is_an_empty_string_not_null) {
    project_row row;
    row.id = 5;
    row.name = "p";
    row.description = "";
    row.project_type = "web-service";
    row.programming_language = "go";
    row.neptun_user_id = 9;
    BOOST_TEST(encode_project(row) ==
               R"({"project":{"id":5,"name":"p","description":"","project_type":"web-service",)"
               R"("programming_language":"go","created_at":null,"updated_at":null,)"
               R"("neptun_user_id":9}})");
}

BOOST_AUTO_TEST_CASE(text_fields_are_escaped) {
    project_row row;
    row.id = 7;
    row.name = "say \"hi\"\nnow \\ é日本🎉";
    row.description = "tab\there\x01";
    row.project_type = "web-site";
    row.programming_language = "php";
    row.neptun_user_id = 8;
    BOOST_TEST(encode_project(row) ==
               "{\"project\":{\"id\":7,\"name\":\"say \\\"hi\\\"\\nnow \\\\ é日本🎉\","
               "\"description\":\"tab\\there\\u0001\",\"project_type\":\"web-site\","
               "\"programming_language\":\"php\",\"created_at\":null,\"updated_at\":null,"
               "\"neptun_user_id\":8}}");
}

BOOST_AUTO_TEST_SUITE_END()
