// The API port's service: the project route, authenticated against the Redis sessions and
// served from the PostgreSQL pool. One instance per I/O thread, owning that thread's Redis
// connection and PostgreSQL connections, so a request never takes a lock.
#pragma once

#include <memory>
#include <string>

#include "neptun/http/errors.hpp"
#include "neptun/http/router.hpp"
#include "neptun/net/server.hpp"
#include "neptun/pg/pool.hpp"
#include "neptun/projects/options.hpp"
#include "neptun/redis/client.hpp"
#include "neptun/redis/session_store.hpp"

namespace neptun::projects {

// The statements every pool prepares, by index.
enum statement_index : std::size_t {
    select_statement = 0,
    update_statement = 1,
    update_if_match_statement = 2
};
std::vector<pg::statement> statements();

class api_service final : public net::service {
  public:
    api_service(boost::asio::io_context& ioc, const service_options& opts);
    ~api_service() override;

    net::routed route(const net::request& header) override;
    boost::asio::awaitable<net::response> handle(const net::request& req, const net::routed& route,
                                                 net::clock::time_point deadline) override;
    net::response error(http::status status, std::string_view message) override;
    void shutdown() override;

    // The route table of the API port (also used by the tests).
    static http::router make_router();

  private:
    boost::asio::awaitable<net::response> run_statement(std::int32_t project_id,
                                                        std::int32_t user_id,
                                                        const net::request& req,
                                                        const net::routed& route,
                                                        net::clock::time_point deadline);
    http::router router_;
    redis::client redis_;
    redis::session_store sessions_;
    pg::pool pool_;
    bool require_if_match_;
};

}  // namespace neptun::projects
