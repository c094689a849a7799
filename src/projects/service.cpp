#include "neptun/projects/service.hpp"

#include <charconv>

#include <boost/asio.hpp>
#include <boost/beast/http.hpp>

#include "neptun/http/conditional.hpp"
#include "neptun/http/errors.hpp"
#include "neptun/http/headers.hpp"
#include "neptun/net/log.hpp"
#include "neptun/net/protocol.hpp"
#include "neptun/projects/ids.hpp"
#include "neptun/projects/json.hpp"
#include "neptun/projects/sql.hpp"
#include "neptun/projects/validation.hpp"

namespace neptun::projects {

namespace bhttp = boost::beast::http;
using http::problem;

namespace {

constexpr std::string_view session_cookie_name = "neptun-session";

// Collects the values of every `name` field (few per request: a fixed array suffices).
struct field_values {
    std::string_view values[8];
    std::size_t count = 0;
    std::size_t total = 0;  // including those beyond the array
    std::span<const std::string_view> span() const { return {values, count}; }
};

field_values collect(const net::request& req, bhttp::field name) {
    field_values out;
    for (const auto& f : req) {
        if (f.name() != name) continue;
        ++out.total;
        if (out.count < std::size(out.values)) out.values[out.count++] = f.value();
    }
    return out;
}

// Integer columns as PostgreSQL prints them, without a temporary string.
std::int64_t integer(std::string_view text) {
    std::int64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

// The project as served, with its ETag (computed by the statement that read or wrote it).
net::response project_response(const pg::result& r) {
    using sql::column;
    auto optional = [&](int col) -> std::optional<std::string_view> {
        if (r.is_null(0, col)) return std::nullopt;
        return r.get(0, col);
    };
    project_row row;
    row.id = integer(r.get(0, column::id));
    row.name = r.get(0, column::name);
    row.description = optional(column::description);
    row.project_type = r.get(0, column::type);
    row.programming_language = r.get(0, column::main_language);
    row.created_at = optional(column::created_at);
    row.updated_at = optional(column::updated_at);
    row.neptun_user_id = integer(r.get(0, column::user_id));
    auto res = http::json_response(http::status::ok, encode_project(row));
    res.set(bhttp::field::etag, http::quote_tag(r.get(0, column::etag)));
    return res;
}

// 412 and 304 carry the project's current ETag.
net::response with_etag(net::response res, std::string_view opaque) {
    res.set(bhttp::field::etag, http::quote_tag(opaque));
    return res;
}

net::response not_modified(std::string_view opaque) {
    net::response res{http::status::not_modified, 11};
    res.set(bhttp::field::cache_control, "no-store");
    return with_etag(std::move(res), opaque);
}

std::vector<http::field_error> if_header_errors(std::string_view header) {
    return {{std::string(header), "must be * or a comma-separated list of entity tags (\"...\")"}};
}

}  // namespace

std::vector<pg::statement> statements() {
    return {{"neptun_select_project", sql::select_project(), false},
            {"neptun_update_project", sql::update_project(), true},
            {"neptun_update_project_if_match", sql::update_project_if_match(), true}};
}

http::router api_service::make_router() {
    return http::router({{"/api/users/{user_id}/projects/{project_id}",
                          {bhttp::verb::get, bhttp::verb::patch},
                          "project"}});
}

api_service::api_service(boost::asio::io_context& ioc, const service_options& opts)
    : router_(make_router()),
      redis_(ioc, opts.redis),
      sessions_(redis_, opts.session_prefix),
      pool_(ioc, opts.pg, statements()),
      require_if_match_(opts.require_if_match) {
    redis_.start();
    pool_.start();
}

api_service::~api_service() = default;

net::routed api_service::route(const net::request& header) {
    return router_.decide(header.target(), header.method());
}

net::response api_service::error(http::status status, std::string_view message) {
    return http::error_response(status, message);
}

void api_service::shutdown() {
    redis_.stop();
    pool_.stop();
}

// The contract's order: 401, 400 (ids), 403, 406, 415, 400 (body), 428, 404, 412, 200 (or
// 304 for a conditional GET). Route,
// method, 431 and 413 were answered by the connection loop before we got here.
boost::asio::awaitable<net::response> api_service::handle(const net::request& req,
                                                          const net::routed& route,
                                                          net::clock::time_point deadline) {
    auto cookies = collect(req, bhttp::field::cookie);
    auto cookie = http::find_session_cookie(cookies.span(), session_cookie_name);
    if (cookie.status != http::cookie_status::ok)
        co_return http::error_response(problem::unauthorized);

    auto session = co_await sessions_.user_for(cookie.token, deadline);
    if (!session.event.empty())
        net::log::warn(session.event, {{session.field, std::string_view(session.detail)},
                                       {"request_id", route.request_id},
                                       {"trace_id", route.trace_id}});
    switch (session.status) {
        case redis::session_status::ok:
            break;
        case redis::session_status::unknown:
        case redis::session_status::invalid:
            co_return http::error_response(problem::unauthorized);
        case redis::session_status::unavailable:
            co_return http::error_response(problem::unavailable);
    }

    auto user_id = parse_id(route.param(req.target(), 0));
    auto project_id = parse_id(route.param(req.target(), 1));
    if (!user_id || !project_id) {
        std::vector<http::field_error> errors;
        if (!user_id) errors.push_back({"user_id", "must be an integer from 1 to 2147483647"});
        if (!project_id)
            errors.push_back({"project_id", "must be an integer from 1 to 2147483647"});
        co_return http::error_response(problem::invalid_id, errors);
    }
    if (session.user_id != *user_id) co_return http::error_response(problem::forbidden);

    auto accept = collect(req, bhttp::field::accept);
    if (accept.total > accept.count || !http::accepts_json(accept.span()))
        co_return http::error_response(problem::not_acceptable);

    co_return co_await run_statement(*project_id, *user_id, req, route, deadline);
}

boost::asio::awaitable<net::response> api_service::run_statement(std::int32_t project_id,
                                                                 std::int32_t user_id,
                                                                 const net::request& req,
                                                                 const net::routed& route,
                                                                 net::clock::time_point deadline) {
    pg::int4_buffer project_param(project_id), user_param(user_id);
    pg::result r;
    http::precondition condition;
    bool conditional_write = false;
    if (req.method() == bhttp::verb::get) {
        auto none_match = collect(req, bhttp::field::if_none_match);
        if (none_match.total > none_match.count)
            co_return http::error_response(problem::invalid_if_none_match,
                                           if_header_errors("If-None-Match"));
        condition = http::parse_precondition(none_match.span());
        if (condition.what == http::precondition::kind::malformed)
            co_return http::error_response(problem::invalid_if_none_match,
                                           if_header_errors("If-None-Match"));
        pg::param params[] = {project_param.as_param(), user_param.as_param()};
        r = co_await pool_.async_execute(select_statement, params, deadline);
    } else {
        auto types = collect(req, bhttp::field::content_type);
        if (types.total != 1 || !http::is_json_content_type(types.values[0]))
            co_return http::error_response(problem::unsupported_media_type);
        auto checked = validate_patch(req.body());
        if (!checked.patch) co_return http::error_response(problem::invalid_body, checked.errors);
        auto match = collect(req, bhttp::field::if_match);
        condition = http::parse_precondition(match.span());
        if (match.total > match.count || condition.what == http::precondition::kind::malformed)
            co_return http::error_response(problem::invalid_if_match, if_header_errors("If-Match"));
        if (condition.what == http::precondition::kind::absent && require_if_match_)
            co_return http::error_response(problem::precondition_required);
        // `*` asks only that the project exists: the plain update's 404 already says that.
        conditional_write = condition.what == http::precondition::kind::tags;
        std::string tags = conditional_write ? http::strong_tag_list(condition) : std::string();
        const auto& p = *checked.patch;
        unsigned char set_description = p.set_description ? 1 : 0;
        auto text_or_null = [](const auto& v) {
            return v ? pg::param::text(*v) : pg::param::none();
        };
        pg::param params[] = {project_param.as_param(),
                              user_param.as_param(),
                              text_or_null(p.name),
                              pg::param::bytes(&set_description, 1),
                              text_or_null(p.description),
                              text_or_null(p.project_type),
                              text_or_null(p.programming_language),
                              pg::param::text(tags)};
        std::span<const pg::param> used(params, conditional_write ? 8 : 7);
        r = co_await pool_.async_execute(
            conditional_write ? update_if_match_statement : update_statement, used, deadline,
            project_id);
    }
    switch (r.outcome()) {
        case pg::result::kind::ok:
            if (r.rows() == 0) co_return http::error_response(problem::project_not_found);
            if (conditional_write && r.get(0, sql::column::written) != "t")
                co_return with_etag(http::error_response(problem::precondition_failed),
                                    r.get(0, sql::column::etag));
            if (req.method() == bhttp::verb::get &&
                condition.what != http::precondition::kind::absent &&
                http::matches_weak(condition, r.get(0, sql::column::etag)))
                co_return not_modified(r.get(0, sql::column::etag));
            co_return project_response(r);
        case pg::result::kind::unavailable:
            co_return http::error_response(problem::unavailable);
        case pg::result::kind::sql_error:
            net::log::error("statement_failed", {{"sqlstate", r.sqlstate()},
                                                 {"request_id", route.request_id},
                                                 {"trace_id", route.trace_id}});
            co_return http::error_response(problem::internal);
    }
    co_return http::error_response(problem::internal);
}

}  // namespace neptun::projects
