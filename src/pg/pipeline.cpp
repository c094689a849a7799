#include "neptun/pg/pipeline.hpp"

namespace neptun::pg {

namespace {

// SQLSTATEs after which the session itself can no longer serve us, whatever we send next:
// the connection is closed (once its pipeline ran out) and a new one is opened.
//   25006 read_only_sql_transaction: the server went read-only (a demoted primary, or
//         default_transaction_read_only); a new connection with target_session_attrs
//         finds the writable one.
//   0A000 from plancache.c ("cached plan must not change result type"): DDL changed a
//         table under a prepared statement; the plan fails the same way on every execution
//         until re-prepared. Told apart by the source file, not the (translated) message.
//   26000 invalid_sql_statement_name: a prepared statement of ours is gone (DISCARD ALL or
//         DEALLOCATE by a pooler in between, a server-side connection swapped).
//   25001, 25P02: a transaction left open or aborted on the session, which one Sync per
//         request never does itself (a pooler that mixed sessions).
//   57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 57P04
//         database_dropped, and class 08 (connection exceptions).
bool recycles_session(std::string_view sqlstate, std::string_view source_file) {
    if (sqlstate == "0A000") return source_file == "plancache.c";
    return sqlstate == "25006" || sqlstate == "26000" || sqlstate == "25001" ||
           sqlstate == "25P02" || sqlstate == "57P01" || sqlstate == "57P02" ||
           sqlstate == "57P03" || sqlstate == "57P04" || sqlstate.starts_with("08");
}

// SQLSTATE classes that mean "the database cannot serve us right now", not "we sent
// something wrong": connection exceptions, operator intervention (including a statement
// timeout), insufficient resources, system errors, serialization failures and deadlocks,
// and a session that must be recycled (a failover in progress, a plan gone stale).
bool is_outage(std::string_view sqlstate, bool recycles) {
    if (sqlstate.size() != 5) return true;  // libpq's own errors carry no SQLSTATE
    auto cls = sqlstate.substr(0, 2);
    return cls == "08" || cls == "57" || cls == "53" || cls == "58" || cls == "40" || cls == "XX" ||
           recycles;
}

}  // namespace

error_class classify_error(std::string_view sqlstate, std::string_view source_file) {
    error_class e;
    e.recycles = recycles_session(sqlstate, source_file);
    e.kind = is_outage(sqlstate, e.recycles) ? result::kind::unavailable : result::kind::sql_error;
    return e;
}

void pipeline::push(std::unique_ptr<job> j, clock::time_point now) {
    if (!j->setup) ++users_;
    if (inflight_.empty()) front_since_ = now;
    inflight_.push_back(std::move(j));
}

job* pipeline::target() {
    if (inflight_.empty()) return nullptr;
    auto& j = *inflight_.front();
    if (j.parts.empty()) return &j;
    auto index = j.results++;
    // More results than parts can only be an error at commit time: the batch's own.
    return index < j.parts.size() ? j.parts[index].get() : &j;
}

void pipeline::on_rows(result r, clock::time_point now) {
    auto* j = target();
    if (!j) return;
    front_since_ = now;  // progress: the watchdog starts over
    if (j->got_result) return;
    j->res = std::move(r);
    j->got_result = true;
}

void pipeline::on_error(result r, const error_class& e, clock::time_point now) {
    auto* j = target();
    if (!j) return;
    front_since_ = now;
    if (recycle_.empty() && e.recycles)
        recycle_ = "session unusable (SQLSTATE " + r.sqlstate() + ")";
    if (!j->got_result || j->res.outcome() == result::kind::ok) {
        j->res = std::move(r);
        j->got_result = true;
    }
}

void pipeline::on_aborted(clock::time_point now) {
    auto* j = target();
    if (!j) return;
    front_since_ = now;
    if (j->got_result) return;
    j->res = result(result::kind::unavailable, "", "pipeline aborted");
    j->got_result = true;
}

pipeline::completed pipeline::on_sync(clock::time_point now) {
    completed out;
    if (inflight_.empty()) return out;
    front_since_ = now;  // the next job starts now
    out.done = std::move(inflight_.front());
    inflight_.pop_front();
    if (!out.done->setup) --users_;
    if (!recycle_.empty() && !out.done->setup && !draining_) {
        draining_ = true;
        out.began_draining = true;
    }
    return out;
}

std::deque<std::unique_ptr<job>> pipeline::take_all() {
    users_ = 0;
    return std::exchange(inflight_, {});
}

void pipeline::reset() {
    recycle_.clear();
    draining_ = false;
}

bool batch_committed(const job& batch) {
    // A result for the batch itself can only be an error at commit time.
    bool ok = !batch.got_result || batch.res.outcome() == result::kind::ok;
    for (const auto& p : batch.parts) ok = ok && p->succeeded();
    return ok;
}

std::vector<part_fate> settle_batch(const job& batch, const key_pins& pins) {
    std::vector<part_fate> fates;
    fates.reserve(batch.parts.size());
    bool committed = batch_committed(batch);
    for (const auto& p : batch.parts) {
        if (committed) {
            fates.push_back(part_fate::answer);
        } else if (!p->handler) {
            fates.push_back(part_fate::abandoned);
        } else if (p->got_result && p->res.outcome() == result::kind::unavailable &&
                   !p->res.sqlstate().empty()) {
            fates.push_back(part_fate::own_outage);
        } else if (p->key != 0 && pins.find(p->key) != key_pins::none) {
            fates.push_back(part_fate::later_write);
        } else {
            fates.push_back(part_fate::resend);
        }
    }
    return fates;
}

}  // namespace neptun::pg
