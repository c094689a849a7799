#include "neptun/pg/stats.hpp"

namespace neptun::pg {

void stats::render(std::string& out, bool up) const {
    net::append_metric(out, "neptun_pg_up", "1 when every PostgreSQL connection is up.", up ? 1 : 0,
                       "gauge");
    out += "# HELP neptun_pg_connections PostgreSQL pool connections by state.\n";
    out += "# TYPE neptun_pg_connections gauge\n";
    out += "neptun_pg_connections{state=\"in_use\"} " +
           std::to_string(in_use.load(std::memory_order_relaxed)) + "\n";
    out += "neptun_pg_connections{state=\"idle\"} " +
           std::to_string(idle.load(std::memory_order_relaxed)) + "\n";
    net::append_metric(out, "neptun_pg_waiting", "Requests waiting for a pool connection.", waiting,
                       "gauge");
    net::append_metric(out, "neptun_pg_errors_total",
                       "PostgreSQL statements that failed (down, timeout, pool wait, error).",
                       errors);
    net::append_metric(out, "neptun_pg_reconnects_total", "PostgreSQL connections re-established.",
                       reconnects);
    net::append_metric(out, "neptun_pg_batches_total",
                       "Update batches committed as one transaction.", batches);
    net::append_metric(out, "neptun_pg_batched_statements_total",
                       "Updates committed inside batches.", batched_statements);
    out += "# HELP neptun_pg_statement_duration_seconds PostgreSQL statement round trips.\n";
    out += "# TYPE neptun_pg_statement_duration_seconds histogram\n";
    latency.render(out, "neptun_pg_statement_duration_seconds", "");
}

stats& global_stats() {
    static stats s;
    return s;
}

}  // namespace neptun::pg
