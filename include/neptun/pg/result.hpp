// What a statement sends and gets back: parameters (binary, no copies) and results (an
// outcome, the SQLSTATE, and the rows of a PGresult it owns). Used by the pool, its
// pipeline state machine and the callers of async_execute.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

struct pg_result;

namespace neptun::pg {

using clock = std::chrono::steady_clock;

// One parameter, always sent in binary format so no copy or terminator is needed.
struct param {
    const char* data = nullptr;
    int length = 0;
    bool null = true;
    static param text(std::string_view s) { return {s.data(), static_cast<int>(s.size()), false}; }
    static param bytes(const void* p, int n) { return {static_cast<const char*>(p), n, false}; }
    static param none() { return {}; }
};

// Network byte order storage for integer and boolean parameters.
struct int4_buffer {
    explicit int4_buffer(std::int32_t v);
    unsigned char bytes[4];
    param as_param() const { return param::bytes(bytes, 4); }
};

class result {
  public:
    enum class kind {
        ok,           // the statement ran and its transaction committed
        sql_error,    // PostgreSQL refused it (sqlstate says why)
        unavailable,  // down, timed out, pool wait exceeded, or lost before the commit
    };
    result() = default;
    result(kind k, std::string sqlstate = {}, std::string message = {});
    result(result&&) noexcept;
    result& operator=(result&&) noexcept;
    ~result();

    kind outcome() const { return kind_; }
    const std::string& sqlstate() const { return sqlstate_; }
    const std::string& message() const { return message_; }
    int rows() const;
    std::string_view get(int row, int col) const;
    bool is_null(int row, int col) const;

    void adopt(pg_result* r);  // takes ownership of a PGresult

  private:
    kind kind_ = kind::unavailable;
    std::string sqlstate_;
    std::string message_;
    pg_result* res_ = nullptr;
};

}  // namespace neptun::pg
