// The PATCH body (CONTRACT §1, "body" and the four fields): one JSON object in UTF-8, no
// duplicate keys, only the four fields and at least one, every broken field reported.
#include <boost/test/unit_test.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "neptun/projects/validation.hpp"

namespace {

using neptun::projects::project_patch;
using neptun::projects::validate_patch;
using neptun::projects::validation_result;

const std::string type_message = "must be one of web-site, web-service, web-app";
const std::string language_message =
    "must be one of typescript, javascript, php, go, python, java, kotlin, ruby, elixir";

std::string repeat(std::string_view s, std::size_t n) {
    std::string out;
    out.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i) out += s;
    return out;
}

std::vector<std::string> fields_of(const validation_result& r) {
    std::vector<std::string> out;
    for (const auto& e : r.errors) out.push_back(e.field);
    return out;
}

std::string describe(const validation_result& r) {
    std::string out = r.patch ? "patch" : "no patch";
    for (const auto& e : r.errors) out += "; " + e.field + ": " + e.message;
    return out;
}

// A valid body: a patch and no errors.
project_patch accept(std::string_view body) {
    auto r = validate_patch(body);
    BOOST_TEST_INFO("body: " << body.substr(0, 200) << " -> " << describe(r));
    BOOST_TEST_REQUIRE(r.errors.empty());
    BOOST_TEST_INFO("body: " << body.substr(0, 200));
    BOOST_TEST_REQUIRE(r.patch.has_value());
    return *r.patch;
}

// A broken body: no patch and exactly one error, on `field`, saying `message`.
void reject(std::string_view body, std::string_view field, std::string_view message) {
    auto r = validate_patch(body);
    BOOST_TEST_CONTEXT("body: " << body.substr(0, 200) << " -> " << describe(r)) {
        BOOST_TEST(!r.patch.has_value());
        BOOST_TEST_REQUIRE(r.errors.size() == 1u);
        BOOST_TEST(r.errors[0].field == field);
        BOOST_TEST(r.errors[0].message == message);
    }
}

// A broken body where only the field named matters.
void reject_field(std::string_view body, std::string_view field) {
    auto r = validate_patch(body);
    BOOST_TEST_CONTEXT("body: " << body.substr(0, 200) << " -> " << describe(r)) {
        BOOST_TEST(!r.patch.has_value());
        BOOST_TEST_REQUIRE(r.errors.size() == 1u);
        BOOST_TEST(r.errors[0].field == field);
        BOOST_TEST(!r.errors[0].message.empty());
    }
}

// A body that must fail, whichever field the implementation blames.
void reject_any(std::string_view body) {
    auto r = validate_patch(body);
    BOOST_TEST_CONTEXT("body: " << body.substr(0, 200) << " -> " << describe(r)) {
        BOOST_TEST(!r.patch.has_value());
        BOOST_TEST(!r.errors.empty());
    }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(projects_validation)

BOOST_AUTO_TEST_CASE(name_alone) {
    auto p = accept(R"({"name":"Updated Project Name"})");
    BOOST_TEST_REQUIRE(p.name.has_value());
    BOOST_TEST(*p.name == "Updated Project Name");
    BOOST_TEST(!p.set_description);
    BOOST_TEST(!p.description.has_value());
    BOOST_TEST(!p.project_type.has_value());
    BOOST_TEST(!p.programming_language.has_value());
}

BOOST_AUTO_TEST_CASE(description_alone) {
    auto p = accept(R"({"description":"Updated project description"})");
    BOOST_TEST(!p.name.has_value());
    BOOST_TEST(p.set_description);
    BOOST_TEST_REQUIRE(p.description.has_value());
    BOOST_TEST(*p.description == "Updated project description");
    BOOST_TEST(!p.project_type.has_value());
    BOOST_TEST(!p.programming_language.has_value());
}

BOOST_AUTO_TEST_CASE(description_null_clears_it) {
    auto p = accept(R"({"description":null})");
    BOOST_TEST(p.set_description);
    BOOST_TEST(!p.description.has_value());
    BOOST_TEST(!p.name.has_value());
}

BOOST_AUTO_TEST_CASE(description_empty_string_is_a_value) {
    auto p = accept(R"({"description":""})");
    BOOST_TEST(p.set_description);
    BOOST_TEST_REQUIRE(p.description.has_value());
    BOOST_TEST(p.description->empty());
}

BOOST_AUTO_TEST_CASE(project_type_alone_each_value) {
    for (std::string_view t : {"web-site", "web-service", "web-app"}) {
        BOOST_TEST_CONTEXT("project_type " << t) {
            auto p = accept(R"({"project_type":")" + std::string(t) + "\"}");
            BOOST_TEST_REQUIRE(p.project_type.has_value());
            BOOST_TEST(*p.project_type == t);
            BOOST_TEST(!p.name.has_value());
            BOOST_TEST(!p.set_description);
            BOOST_TEST(!p.programming_language.has_value());
        }
    }
}

BOOST_AUTO_TEST_CASE(programming_language_alone_each_value) {
    for (std::string_view l :
         {"typescript", "javascript", "php", "go", "python", "java", "kotlin", "ruby", "elixir"}) {
        BOOST_TEST_CONTEXT("programming_language " << l) {
            auto p = accept(R"({"programming_language":")" + std::string(l) + "\"}");
            BOOST_TEST_REQUIRE(p.programming_language.has_value());
            BOOST_TEST(*p.programming_language == l);
            BOOST_TEST(!p.name.has_value());
            BOOST_TEST(!p.set_description);
            BOOST_TEST(!p.project_type.has_value());
        }
    }
}

BOOST_AUTO_TEST_CASE(enum_lists_match_the_schema) {
    BOOST_TEST(neptun::projects::project_types ==
                   (std::vector<std::string_view>{"web-site", "web-service", "web-app"}),
               boost::test_tools::per_element());
    BOOST_TEST(neptun::projects::programming_languages ==
                   (std::vector<std::string_view>{"typescript", "javascript", "php", "go", "python",
                                                  "java", "kotlin", "ruby", "elixir"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(all_four_fields) {
    auto p = accept(R"({"name":"Updated Project Name","description":"Updated project description",)"
                    R"("project_type":"web-service","programming_language":"kotlin"})");
    BOOST_TEST_REQUIRE(p.name.has_value());
    BOOST_TEST(*p.name == "Updated Project Name");
    BOOST_TEST(p.set_description);
    BOOST_TEST_REQUIRE(p.description.has_value());
    BOOST_TEST(*p.description == "Updated project description");
    BOOST_TEST_REQUIRE(p.project_type.has_value());
    BOOST_TEST(*p.project_type == "web-service");
    BOOST_TEST_REQUIRE(p.programming_language.has_value());
    BOOST_TEST(*p.programming_language == "kotlin");
}

BOOST_AUTO_TEST_CASE(enum_values_outlive_the_body) {
    // The patch is used after the request buffer is gone: its enum views must be the static
    // names, not views into the body.
    std::string body = R"({"project_type":"web-app","programming_language":"ruby"})";
    auto r = validate_patch(body);
    body.assign(body.size(), 'x');
    BOOST_TEST_REQUIRE(r.patch.has_value());
    BOOST_TEST(*r.patch->project_type == "web-app");
    BOOST_TEST(r.patch->project_type->data() == neptun::projects::project_types[2].data());
    BOOST_TEST(*r.patch->programming_language == "ruby");
    BOOST_TEST(r.patch->programming_language->data() ==
               neptun::projects::programming_languages[7].data());
}

BOOST_AUTO_TEST_CASE(escapes_are_decoded) {
    auto p = accept(R"({"n\u0061me":"a\"b\\c\nd\u00e9\ud83c\udf89\/"})");
    BOOST_TEST_REQUIRE(p.name.has_value());
    BOOST_TEST(*p.name == "a\"b\\c\ndé🎉/");
}

BOOST_AUTO_TEST_CASE(white_space_around_the_object_is_fine) {
    auto p = accept(" \t\r\n{ \"name\" : \"x\" , \"description\" : null }\r\n");
    BOOST_TEST_REQUIRE(p.name.has_value());
    BOOST_TEST(*p.name == "x");
    BOOST_TEST(p.set_description);
}

BOOST_AUTO_TEST_CASE(name_length_limit_in_code_points) {
    // 255 two-byte code points: 510 bytes, still 255 characters.
    auto p = accept(R"({"name":")" + repeat("é", 255) + "\"}");
    BOOST_TEST_REQUIRE(p.name.has_value());
    BOOST_TEST(*p.name == repeat("é", 255));
    accept(R"({"name":")" + repeat("a", 255) + "\"}");
    accept(R"({"name":")" + repeat("日", 255) + "\"}");
    accept(R"({"name":")" + repeat("🎉", 255) + "\"}");
    accept(R"({"name":")" + repeat("\\ud83c\\udf89", 255) + "\"}");
    accept(R"({"name":")" + repeat("\\u00e9", 255) + "\"}");

    reject(R"({"name":")" + repeat("é", 256) + "\"}", "name", "must be at most 255 characters");
    reject(R"({"name":")" + repeat("a", 256) + "\"}", "name", "must be at most 255 characters");
    reject(R"({"name":")" + repeat("🎉", 256) + "\"}", "name", "must be at most 255 characters");
    reject(R"({"name":")" + repeat("\\u00e9", 256) + "\"}", "name",
           "must be at most 255 characters");
}

BOOST_AUTO_TEST_CASE(blank_names_are_refused) {
    for (std::string_view name :
         {"", " ", "   ", "\\t\\n", "\\r\\n \\t", "\\u00a0\\u3000", "\\u2028", "\\ufeff",
          "\\u000b\\u000c", "\\u0085", "\\u2000\\u200a\\u202f\\u205f\\u1680", "\u00a0\u3000"}) {
        reject(R"({"name":")" + std::string(name) + "\"}", "name", "must not be blank");
    }
}

BOOST_AUTO_TEST_CASE(name_with_white_space_around_text_is_not_blank) {
    auto p = accept(R"({"name":"  x  "})");
    BOOST_TEST(p.name.has_value());
    accept(R"({"name":"\u00a0x"})");
    accept(R"({"name":"\u200b"})");  // zero width space is not White_Space
}

BOOST_AUTO_TEST_CASE(name_with_nul_is_refused) {
    reject(R"({"name":"\u0000"})", "name", "must not contain U+0000");
    reject(R"({"name":"a\u0000b"})", "name", "must not contain U+0000");
    reject(R"({"name":"abc\u0000"})", "name", "must not contain U+0000");
}

BOOST_AUTO_TEST_CASE(description_length_limit_in_code_points) {
    auto p = accept(R"({"description":")" + repeat("é", 10000) + "\"}");
    BOOST_TEST_REQUIRE(p.description.has_value());
    BOOST_TEST(p.description->size() == 20000u);
    accept(R"({"description":")" + repeat("a", 10000) + "\"}");
    reject(R"({"description":")" + repeat("é", 10001) + "\"}", "description",
           "must be at most 10000 characters");
    reject(R"({"description":")" + repeat("a", 10001) + "\"}", "description",
           "must be at most 10000 characters");
}

BOOST_AUTO_TEST_CASE(description_may_be_blank_but_not_hold_nul) {
    accept(R"({"description":"   "})");
    reject(R"({"description":"a\u0000"})", "description", "must not contain U+0000");
}

BOOST_AUTO_TEST_CASE(bad_project_types) {
    for (std::string_view value : {R"("Web-Site")", R"("")", R"("web-site ")", R"(" web-site")",
                                   R"("WEB-APP")", R"("web_site")", R"("website")", "1", "null",
                                   "true", R"(["web-site"])", R"({"value":"web-site"})"}) {
        reject(R"({"project_type":)" + std::string(value) + "}", "project_type", type_message);
    }
}

BOOST_AUTO_TEST_CASE(bad_programming_languages) {
    for (std::string_view value : {R"("TypeScript")", R"("")", R"("ts")", R"("c++")", R"("go ")",
                                   "null", "0", "false", R"(["go"])", "{}"}) {
        reject(R"({"programming_language":)" + std::string(value) + "}", "programming_language",
               language_message);
    }
}

BOOST_AUTO_TEST_CASE(name_must_be_a_string) {
    for (std::string_view value :
         {"null", "5", "{}", "[]", "true", R"(["x"])", R"({"x":"y"})", "1.5"}) {
        reject(R"({"name":)" + std::string(value) + "}", "name", "must be a string");
    }
}

BOOST_AUTO_TEST_CASE(description_must_be_a_string_or_null) {
    for (std::string_view value : {"5", "{}", "[]", "false", R"(["x"])"}) {
        reject(R"({"description":)" + std::string(value) + "}", "description",
               "must be a string or null");
    }
}

BOOST_AUTO_TEST_CASE(unknown_keys_are_named) {
    const std::string unknown =
        "is not a field of a project (name, description, project_type, programming_language)";
    reject(R"({"name":"x","owner":1})", "owner", unknown);
    reject(R"({"id":5})", "id", unknown);
    reject(R"({"neptun_user_id":456,"name":"x"})", "neptun_user_id", unknown);
    reject(R"({"created_at":"2025-01-01T00:00:00.000Z"})", "created_at", unknown);
    reject(R"({"Name":"x"})", "Name", unknown);
    reject(R"({"type":"web-site"})", "type", unknown);
    reject(R"({"main_language":"go"})", "main_language", unknown);
    reject(R"({"":"x"})", "", unknown);
}

BOOST_AUTO_TEST_CASE(keys_of_nested_objects_are_not_judged) {
    // Only the unknown top-level key is an error; what sits inside it is not a field.
    reject_field(R"({"extra":{"name":5,"bogus":1}})", "extra");
}

BOOST_AUTO_TEST_CASE(duplicate_keys_are_refused) {
    reject(R"({"name":"a","name":"b"})", "name", "appears more than once");
    reject(R"({"name":"a","name":"a"})", "name", "appears more than once");
    reject(R"({"description":null,"description":"x"})", "description", "appears more than once");
    reject(R"({"project_type":"web-site","project_type":"web-app"})", "project_type",
           "appears more than once");
    reject(R"({"programming_language":"go","programming_language":"go"})", "programming_language",
           "appears more than once");
    // The same key spelled with an escape is still the same key.
    reject(R"({"name":"a","n\u0061me":"b"})", "name", "appears more than once");
}

BOOST_AUTO_TEST_CASE(empty_object_is_refused) {
    reject("{}", "body",
           "must contain at least one of name, description, project_type, programming_language");
    reject(" { } ", "body",
           "must contain at least one of name, description, project_type, programming_language");
}

BOOST_AUTO_TEST_CASE(json_that_is_not_an_object_is_refused) {
    for (std::string_view body : {"[]", "1", "\"x\"", "null", "true", "[{\"name\":\"x\"}]", "-0.5",
                                  "\"{\\\"name\\\":\\\"x\\\"}\""}) {
        reject(body, "body", "must be a JSON object");
    }
}

BOOST_AUTO_TEST_CASE(text_that_is_not_one_json_value_is_refused) {
    for (std::string_view body : {"",
                                  " ",
                                  "{",
                                  "}",
                                  "{}x",
                                  "{} {}",
                                  R"({"name":"x"} {"name":"y"})",
                                  R"({"name":"x"})"
                                  "\n{}",
                                  R"({"name":"x",})",
                                  R"({'name':'x'})",
                                  R"({"name":"x")",
                                  R"({"name":x})",
                                  R"({name:"x"})",
                                  R"({"name":"x"/*c*/})",
                                  R"({"name":"x"}//c)",
                                  R"({"name":"a\qb"})",
                                  R"({"name":"a)"
                                  "\n"
                                  R"(b"})",
                                  R"({"name":"\u12"})",
                                  R"({"name":NaN})",
                                  R"({"name":"x"};)"}) {
        reject(body, "body", "must be one valid JSON object in UTF-8");
    }
}

BOOST_AUTO_TEST_CASE(invalid_utf8_is_refused) {
    for (std::string_view body : {
             "\xff", "{\"name\":\"\xff\"}",
             "{\"name\":\"ab\xc3\"}",            // truncated sequence
             "{\"name\":\"\xc0\xaf\"}",          // overlong '/'
             "{\"name\":\"\xe0\x80\xaf\"}",      // overlong, three bytes
             "{\"name\":\"\xed\xa0\x80\"}",      // a surrogate encoded as UTF-8
             "{\"name\":\"\xf4\x90\x80\x80\"}",  // past U+10FFFF
             "{\"description\":\"\x80\"}",       // lone continuation byte
             "{\"na\xffme\":\"x\"}",             // in a key
             "{\"extra\":\"\xfe\"}",             // in an unknown field's value
         }) {
        reject_any(body);
    }
}

BOOST_AUTO_TEST_CASE(lone_surrogate_escapes_are_refused) {
    reject_any(R"({"name":"\ud800"})");
    reject_any(R"({"name":"a\udc00b"})");
    reject_any(R"({"name":"\ud83cx"})");
    reject_any(R"({"description":"\udfff"})");
    reject_any(R"({"name":"\ud800\ud800"})");
}

BOOST_AUTO_TEST_CASE(every_broken_field_is_listed) {
    auto r = validate_patch(
        R"({"name":"   ","description":5,"project_type":"x","programming_language":"y",)"
        R"("extra":1})");
    BOOST_TEST_INFO(describe(r));
    BOOST_TEST(!r.patch.has_value());
    BOOST_TEST_REQUIRE(r.errors.size() == 5u);
    BOOST_TEST(fields_of(r) == (std::vector<std::string>{"name", "description", "project_type",
                                                         "programming_language", "extra"}),
               boost::test_tools::per_element());
    BOOST_TEST(r.errors[0].message == "must not be blank");
    BOOST_TEST(r.errors[1].message == "must be a string or null");
    BOOST_TEST(r.errors[2].message == type_message);
    BOOST_TEST(r.errors[3].message == language_message);
}

BOOST_AUTO_TEST_CASE(valid_fields_do_not_hide_broken_ones) {
    auto r = validate_patch(R"({"name":"ok","project_type":"bad","programming_language":"go"})");
    BOOST_TEST(!r.patch.has_value());
    BOOST_TEST_REQUIRE(r.errors.size() == 1u);
    BOOST_TEST(r.errors[0].field == "project_type");

    auto two = validate_patch(R"({"bogus":1,"name":"ok","other":2})");
    BOOST_TEST(!two.patch.has_value());
    BOOST_TEST(fields_of(two) == (std::vector<std::string>{"bogus", "other"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(duplicate_and_other_errors_together) {
    auto r = validate_patch(R"({"name":"a","name":"b","project_type":"nope"})");
    BOOST_TEST(!r.patch.has_value());
    BOOST_TEST(fields_of(r) == (std::vector<std::string>{"name", "project_type"}),
               boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(deep_nesting_is_refused_not_crashed) {
    std::string body = R"({"extra":)" + repeat("[", 10000) + repeat("]", 10000) + "}";
    reject_any(body);
}

BOOST_AUTO_TEST_SUITE_END()
