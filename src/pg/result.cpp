#include "neptun/pg/result.hpp"

#include <libpq-fe.h>

#include <utility>

namespace neptun::pg {

int4_buffer::int4_buffer(std::int32_t v) {
    auto u = static_cast<std::uint32_t>(v);
    bytes[0] = static_cast<unsigned char>(u >> 24);
    bytes[1] = static_cast<unsigned char>(u >> 16);
    bytes[2] = static_cast<unsigned char>(u >> 8);
    bytes[3] = static_cast<unsigned char>(u);
}

result::result(kind k, std::string sqlstate, std::string message)
    : kind_(k), sqlstate_(std::move(sqlstate)), message_(std::move(message)) {}
result::result(result&& o) noexcept
    : kind_(o.kind_),
      sqlstate_(std::move(o.sqlstate_)),
      message_(std::move(o.message_)),
      res_(std::exchange(o.res_, nullptr)) {}
result& result::operator=(result&& o) noexcept {
    if (this != &o) {
        if (res_) PQclear(res_);
        kind_ = o.kind_;
        sqlstate_ = std::move(o.sqlstate_);
        message_ = std::move(o.message_);
        res_ = std::exchange(o.res_, nullptr);
    }
    return *this;
}
result::~result() {
    if (res_) PQclear(res_);
}
int result::rows() const {
    return res_ ? PQntuples(res_) : 0;
}
std::string_view result::get(int row, int col) const {
    return {PQgetvalue(res_, row, col), static_cast<std::size_t>(PQgetlength(res_, row, col))};
}
bool result::is_null(int row, int col) const {
    return PQgetisnull(res_, row, col) != 0;
}
void result::adopt(pg_result* r) {
    if (res_) PQclear(res_);
    res_ = r;
}

}  // namespace neptun::pg
