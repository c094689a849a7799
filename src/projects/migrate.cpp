#include "neptun/projects/migrate.hpp"

#include <libpq-fe.h>

#include <memory>

#include "neptun/projects/validation.hpp"

namespace neptun::projects {
namespace {

struct pq_deleter {
    void operator()(PGconn* c) const { PQfinish(c); }
    void operator()(PGresult* r) const { PQclear(r); }
};
using conn_ptr = std::unique_ptr<PGconn, pq_deleter>;
using result_ptr = std::unique_ptr<PGresult, pq_deleter>;

struct column_spec {
    const char* name;
    const char* type;  // as format_type() prints it
};

struct table_spec {
    const char* name;
    const char* create;
    std::vector<column_spec> columns;
};

const std::vector<table_spec>& tables() {
    static const std::vector<table_spec> t{
        {"neptun_user",
         R"(CREATE TABLE neptun_user (
  id serial PRIMARY KEY,
  primary_email text NOT NULL UNIQUE,
  created_at timestamp DEFAULT now(),
  updated_at timestamp DEFAULT now()))",
         {{"id", "integer"}}},
        {"neptun_user_project",
         R"(CREATE TABLE neptun_user_project (
  id serial PRIMARY KEY,
  name text NOT NULL,
  description text,
  type project_type NOT NULL,
  main_language programming_language NOT NULL,
  prompt_context jsonb,
  created_at timestamp DEFAULT now(),
  updated_at timestamp DEFAULT now(),
  neptun_user_id integer NOT NULL REFERENCES neptun_user(id) ON DELETE CASCADE))",
         {{"id", "integer"},
          {"name", "text"},
          {"description", "text"},
          {"type", "project_type"},
          {"main_language", "programming_language"},
          {"created_at", "timestamp without time zone"},
          {"updated_at", "timestamp without time zone"},
          {"neptun_user_id", "integer"}}},
    };
    return t;
}

class session {
  public:
    explicit session(PGconn* c) : c_(c) {}
    // Runs `sql` with text parameters; an error becomes `error` and a false return.
    bool run(const char* sql, std::vector<std::string> params, result_ptr* out = nullptr) {
        std::vector<const char*> values;
        for (auto& p : params) values.push_back(p.c_str());
        result_ptr r(PQexecParams(c_, sql, static_cast<int>(values.size()), nullptr, values.data(),
                                  nullptr, nullptr, 0));
        auto st = PQresultStatus(r.get());
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            error = PQresultErrorMessage(r.get());
            while (!error.empty() && (error.back() == '\n' || error.back() == ' '))
                error.pop_back();
            return false;
        }
        if (out) *out = std::move(r);
        return true;
    }
    std::string error;

  private:
    PGconn* c_;
};

bool ensure_enum(session& s, const char* name, const std::vector<std::string_view>& labels,
                 migrate_outcome& out) {
    result_ptr r;
    if (!s.run("SELECT t.typtype, array_to_string(ARRAY(SELECT e.enumlabel FROM pg_enum e "
               "WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder), ',') "
               "FROM pg_type t WHERE t.oid = to_regtype($1)",
               {name}, &r))
        return false;
    if (PQntuples(r.get()) == 0) {
        std::string sql = std::string("CREATE TYPE ") + name + " AS ENUM (";
        for (std::size_t i = 0; i < labels.size(); ++i)
            sql += (i ? ", '" : "'") + std::string(labels[i]) + "'";
        sql += ")";
        if (!s.run(sql.c_str(), {})) return false;
        out.created.push_back(std::string("type ") + name);
        return true;
    }
    if (std::string_view(PQgetvalue(r.get(), 0, 0)) != "e") {
        s.error = std::string("type ") + name + " exists but is not an enum";
        return false;
    }
    std::string have = std::string(",") + PQgetvalue(r.get(), 0, 1) + ",";
    for (auto l : labels) {
        if (have.find("," + std::string(l) + ",") == std::string::npos) {
            s.error =
                std::string("enum ") + name + " exists without the label '" + std::string(l) + "'";
            return false;
        }
    }
    return true;
}

bool ensure_table(session& s, const table_spec& t, migrate_outcome& out) {
    result_ptr r;
    if (!s.run("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass($1)", {t.name}, &r))
        return false;
    if (PQntuples(r.get()) == 0) {
        if (!s.run(t.create, {})) return false;
        out.created.push_back(std::string("table ") + t.name);
        return true;
    }
    std::string_view kind = PQgetvalue(r.get(), 0, 0);
    if (kind != "r" && kind != "p") {
        s.error = std::string(t.name) + " exists but is not a table";
        return false;
    }
    for (const auto& col : t.columns) {
        result_ptr c;
        if (!s.run("SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                   "WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 "
                   "AND NOT a.attisdropped",
                   {t.name, col.name}, &c))
            return false;
        if (PQntuples(c.get()) == 0) {
            s.error = std::string("table ") + t.name + " exists without column " + col.name;
            return false;
        }
        std::string_view type = PQgetvalue(c.get(), 0, 0);
        if (type != col.type) {
            s.error = std::string("column ") + t.name + "." + col.name + " is " +
                      std::string(type) + ", expected " + col.type;
            return false;
        }
    }
    return true;
}

}  // namespace

migrate_outcome migrate(const std::string& conninfo) {
    migrate_outcome out;
    const char* keys[] = {"dbname", "connect_timeout", "fallback_application_name", nullptr};
    const char* vals[] = {conninfo.c_str(), "10", "neptun-api-migrate", nullptr};
    conn_ptr conn(PQconnectdbParams(keys, vals, 1));
    if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
        out.error = "cannot connect to the database: ";
        out.error += conn ? PQerrorMessage(conn.get()) : "out of memory";
        while (!out.error.empty() && (out.error.back() == '\n' || out.error.back() == ' '))
            out.error.pop_back();
        for (auto& ch : out.error)
            if (ch == '\n') ch = ' ';
        return out;
    }
    PQsetNoticeProcessor(
        conn.get(), [](void*, const char*) {}, nullptr);
    session s(conn.get());
    // One transaction, serialized against other migrators (several replicas' Jobs). Its own
    // statement_timeout: the role's (often the API's few seconds) would cut the 30 s wait
    // for a lock short.
    bool ok = s.run("BEGIN", {}) && s.run("SET LOCAL lock_timeout = '30s'", {}) &&
              s.run("SET LOCAL statement_timeout = '60s'", {}) &&
              s.run("SELECT pg_advisory_xact_lock(4242424242)", {}) &&
              ensure_enum(s, "project_type", project_types, out) &&
              ensure_enum(s, "programming_language", programming_languages, out);
    for (const auto& t : tables()) ok = ok && ensure_table(s, t, out);
    ok = ok && s.run("COMMIT", {});
    if (!ok) {
        out.error = s.error;
        out.created.clear();
        for (auto& ch : out.error)
            if (ch == '\n') ch = ' ';
        return out;
    }
    out.ok = true;
    return out;
}

}  // namespace neptun::projects
