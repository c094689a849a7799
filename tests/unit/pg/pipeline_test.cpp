// The connection pipeline state machine, driven by synthetic libpq events: which job each
// result belongs to, when a job is complete, recycling, the watchdog's start, and what each
// part of a failed batch gets (answered, 503, sent again) -- no server.
#include <boost/test/unit_test.hpp>

#include <memory>
#include <string>
#include <vector>

#include "neptun/pg/pipeline.hpp"

namespace pg = neptun::pg;
using pg::part_fate;
using pg::result;
using namespace std::chrono_literals;

namespace {

const pg::clock::time_point t0 = pg::clock::time_point{} + 1h;

// A request with key `key`; `name` is what the harness records when it is answered.
std::unique_ptr<pg::job> request(std::int64_t key, std::vector<std::string>* log = nullptr,
                                 std::string name = {}) {
    auto j = std::make_unique<pg::job>();
    j->key = key;
    j->handler = neptun::net::completion<result>([log, name](result r) {
        if (log) log->push_back(name + ":" + std::to_string(static_cast<int>(r.outcome())));
    });
    return j;
}

std::unique_ptr<pg::job> batch_of(std::vector<std::unique_ptr<pg::job>> parts) {
    auto b = std::make_unique<pg::job>();
    b->parts = std::move(parts);
    return b;
}

template <typename... J>
std::vector<std::unique_ptr<pg::job>> list(J... j) {
    std::vector<std::unique_ptr<pg::job>> v;
    (v.push_back(std::move(j)), ...);
    return v;
}

result rows() {
    return result(result::kind::ok);
}

// An error result as the driver builds it from PG_DIAG_SQLSTATE and PG_DIAG_SOURCE_FILE.
void error(pg::pipeline& p, const std::string& sqlstate, pg::clock::time_point now,
           const std::string& file = "postgres.c") {
    auto e = pg::classify_error(sqlstate, file);
    p.on_error(result(e.kind, sqlstate, "ERROR: " + sqlstate), e, now);
}

void pin_all(pg::key_pins& pins, const pg::job& j, unsigned conn) {
    if (j.parts.empty() && j.key != 0) pins.pin(j.key, conn);
    for (const auto& p : j.parts) pins.pin(p->key, conn);
}
void unpin_all(pg::key_pins& pins, const pg::job& j) {
    if (j.parts.empty() && j.key != 0) pins.unpin(j.key);
    for (const auto& p : j.parts) pins.unpin(p->key);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(pg_pipeline)

BOOST_AUTO_TEST_CASE(errors_are_classified_without_the_message_text) {
    auto plan = pg::classify_error("0A000", "plancache.c");
    BOOST_TEST(plan.recycles);
    BOOST_TEST((plan.kind == result::kind::unavailable));
    // Another feature_not_supported error is the caller's: no recycle, not an outage.
    auto other = pg::classify_error("0A000", "parse_utilcmd.c");
    BOOST_TEST(!other.recycles);
    BOOST_TEST((other.kind == result::kind::sql_error));
    BOOST_TEST(!pg::classify_error("0A000", "").recycles);
    for (const char* s : {"25006", "26000", "25001", "25P02", "57P01", "57P02", "57P03", "57P04",
                          "08006", "08P01"}) {
        BOOST_TEST_CONTEXT(s) {
            BOOST_TEST(pg::classify_error(s, "").recycles);
            BOOST_TEST((pg::classify_error(s, "").kind == result::kind::unavailable));
        }
    }
    for (const char* s : {"57014", "40P01", "40001", "53300", "58030", "XX000", ""}) {
        BOOST_TEST_CONTEXT(s) {
            BOOST_TEST(!pg::classify_error(s, "").recycles);
            BOOST_TEST((pg::classify_error(s, "").kind == result::kind::unavailable));
        }
    }
    for (const char* s : {"23514", "22P02", "23505", "42P01", "55P03"}) {
        BOOST_TEST_CONTEXT(s) {
            BOOST_TEST(!pg::classify_error(s, "").recycles);
            BOOST_TEST((pg::classify_error(s, "").kind == result::kind::sql_error));
        }
    }
}

BOOST_AUTO_TEST_CASE(results_belong_to_the_front_job_and_jobs_complete_in_order) {
    pg::pipeline p;
    auto setup = std::make_unique<pg::job>();
    setup->setup = true;
    p.push(std::move(setup), t0);
    auto a = request(1), b = request(2), c = request(3);
    auto *pa = a.get(), *pb = b.get(), *pc = c.get();
    p.push(std::move(a), t0);
    p.push(std::move(b), t0);
    p.push(std::move(c), t0);
    BOOST_TEST(p.size() == 4u);
    BOOST_TEST(p.users() == 3u);  // the setup is not a request

    // The setup: SET, then two PREPAREs, then its Sync.
    p.on_rows(rows(), t0);
    p.on_rows(rows(), t0);
    p.on_rows(rows(), t0);
    auto s = p.on_sync(t0);
    BOOST_TEST(s.done->setup);
    BOOST_TEST(s.done->succeeded());
    BOOST_TEST(p.users() == 3u);

    p.on_rows(rows(), t0);
    auto da = p.on_sync(t0);
    BOOST_TEST(da.done.get() == pa);
    BOOST_TEST(da.done->succeeded());

    error(p, "23514", t0);
    p.on_aborted(t0);  // libpq's PIPELINE_ABORTED after the error does not overwrite it
    auto db = p.on_sync(t0);
    BOOST_TEST(db.done.get() == pb);
    BOOST_TEST((db.done->res.outcome() == result::kind::sql_error));
    BOOST_TEST(db.done->res.sqlstate() == "23514");
    BOOST_TEST(!db.began_draining);

    // A commit-time error after a row result replaces the row result.
    p.on_rows(rows(), t0);
    error(p, "40001", t0);
    auto dc = p.on_sync(t0);
    BOOST_TEST(dc.done.get() == pc);
    BOOST_TEST((dc.done->res.outcome() == result::kind::unavailable));
    BOOST_TEST(dc.done->res.sqlstate() == "40001");
    BOOST_TEST(p.empty());
    BOOST_TEST(p.users() == 0u);

    // Events with nothing in flight are ignored.
    p.on_rows(rows(), t0);
    BOOST_TEST(!p.on_sync(t0).done);
}

BOOST_AUTO_TEST_CASE(an_aborted_job_without_an_error_of_its_own_is_unavailable) {
    pg::pipeline p;
    p.push(request(1), t0);
    p.on_aborted(t0);
    auto d = p.on_sync(t0);
    BOOST_TEST((d.done->res.outcome() == result::kind::unavailable));
    BOOST_TEST(d.done->res.sqlstate().empty());
    BOOST_TEST(d.done->res.message() == "pipeline aborted");
}

BOOST_AUTO_TEST_CASE(the_watchdog_measures_from_the_front_jobs_own_start) {
    pg::pipeline p;
    BOOST_TEST(!p.stalled(t0 + 1h, 1s));  // nothing in flight: never stalled
    p.push(request(1), t0);
    BOOST_TEST((p.front_since() == t0));
    p.push(request(2), t0 + 3s);  // behind: the front's start stays
    BOOST_TEST((p.front_since() == t0));
    BOOST_TEST(!p.stalled(t0 + 5s, 5s));
    BOOST_TEST(p.stalled(t0 + 5s + 1ms, 5s));
    p.on_rows(rows(), t0 + 4s);  // progress: it starts over
    BOOST_TEST((p.front_since() == t0 + 4s));
    p.on_sync(t0 + 4500ms);  // job 2 became the front: measured from now, not its sending
    BOOST_TEST((p.front_since() == t0 + 4500ms));
    BOOST_TEST(!p.stalled(t0 + 9s, 5s));
    BOOST_TEST(p.stalled(t0 + 9501ms, 5s));
    p.on_sync(t0 + 9600ms);
    p.push(request(3), t0 + 20s);  // to an empty pipeline: its own sending
    BOOST_TEST((p.front_since() == t0 + 20s));
}

BOOST_AUTO_TEST_CASE(an_unusable_session_drains_what_is_in_flight_then_closes) {
    pg::pipeline p;
    p.push(request(1), t0);
    p.push(request(2), t0);
    p.push(request(3), t0);
    error(p, "25006", t0);
    BOOST_TEST(p.recycle_reason() == "session unusable (SQLSTATE 25006)");
    BOOST_TEST(!p.draining());  // decided at that job's Sync
    auto d1 = p.on_sync(t0);
    BOOST_TEST(d1.began_draining);
    BOOST_TEST((d1.done->res.outcome() == result::kind::unavailable));
    BOOST_TEST(p.draining());
    BOOST_TEST(!p.drained());  // the jobs behind still run to their real outcome
    p.on_rows(rows(), t0);
    auto d2 = p.on_sync(t0);
    BOOST_TEST(!d2.began_draining);
    BOOST_TEST(d2.done->succeeded());  // it committed: answered as such, not 503
    error(p, "25006", t0);
    auto d3 = p.on_sync(t0);
    BOOST_TEST(!d3.began_draining);
    BOOST_TEST(p.drained());
    p.reset();  // a new session
    BOOST_TEST(!p.draining());
    BOOST_TEST(p.recycle_reason().empty());
}

BOOST_AUTO_TEST_CASE(a_failed_setup_does_not_drain_and_take_all_empties) {
    pg::pipeline p;
    auto setup = std::make_unique<pg::job>();
    setup->setup = true;
    p.push(std::move(setup), t0);
    p.push(request(1), t0);
    error(p, "57P03", t0);
    auto d = p.on_sync(t0);
    BOOST_TEST(d.done->setup);
    BOOST_TEST(!d.began_draining);  // the driver breaks the connection itself
    auto lost = p.take_all();
    BOOST_TEST(lost.size() == 1u);
    BOOST_TEST(lost.front()->key == 1);
    BOOST_TEST(p.empty());
    BOOST_TEST(p.users() == 0u);
}

BOOST_AUTO_TEST_CASE(a_committed_batch_answers_each_part_with_its_own_result) {
    pg::pipeline p;
    pg::key_pins pins;
    auto b = batch_of(list(request(1), request(2), request(3)));
    pin_all(pins, *b, 0);
    p.push(std::move(b), t0);
    BOOST_TEST(p.users() == 1u);
    p.on_rows(rows(), t0);
    p.on_rows(rows(), t0);
    p.on_rows(rows(), t0);
    auto d = p.on_sync(t0);
    unpin_all(pins, *d.done);
    BOOST_TEST(pg::batch_committed(*d.done));
    auto fates = pg::settle_batch(*d.done, pins);
    BOOST_TEST((fates == std::vector{part_fate::answer, part_fate::answer, part_fate::answer}));
    for (const auto& part : d.done->parts) BOOST_TEST(part->succeeded());
}

BOOST_AUTO_TEST_CASE(a_failed_batch_gives_503_to_its_own_outages_and_resends_the_rest) {
    pg::pipeline p;
    pg::key_pins pins;
    auto b = batch_of(list(request(1), request(2), request(3), request(4), request(5)));
    b->parts[4]->handler = {};  // its caller is gone
    pin_all(pins, *b, 0);
    p.push(std::move(b), t0);
    p.on_rows(rows(), t0);  // part 1 ran, then rolled back with the rest
    error(p, "57014", t0);  // part 2: its own statement timed out on a lock
    p.on_aborted(t0);       // parts 3..5: never ran
    p.on_aborted(t0);
    p.on_aborted(t0);
    auto d = p.on_sync(t0);
    unpin_all(pins, *d.done);
    BOOST_TEST(!pg::batch_committed(*d.done));
    BOOST_TEST(d.done->parts[1]->res.sqlstate() == "57014");
    auto fates = pg::settle_batch(*d.done, pins);
    BOOST_TEST((fates == std::vector{part_fate::resend, part_fate::own_outage, part_fate::resend,
                                     part_fate::resend, part_fate::abandoned}));
}

BOOST_AUTO_TEST_CASE(a_bad_statement_in_a_batch_is_resent_alone_and_fails_alone) {
    pg::pipeline p;
    pg::key_pins pins;
    auto b = batch_of(list(request(1), request(2)));
    pin_all(pins, *b, 0);
    p.push(std::move(b), t0);
    p.on_rows(rows(), t0);
    error(p, "23514", t0);  // a check violation is the request's, not an outage
    auto d = p.on_sync(t0);
    unpin_all(pins, *d.done);
    auto fates = pg::settle_batch(*d.done, pins);
    BOOST_TEST((fates == std::vector{part_fate::resend, part_fate::resend}));
}

BOOST_AUTO_TEST_CASE(a_part_whose_project_has_a_later_write_in_flight_gets_503) {
    // Batch [k7, k8, k9] sent, then a later single write of k7 and one of k9 behind it on the
    // same connection. The batch fails (a deadlock on k8): k7's and k9's parts sent again
    // would commit after their later writes and overwrite them; only k8 is retried.
    pg::pipeline p;
    pg::key_pins pins;
    std::vector<std::string> answered;
    auto b = batch_of(list(request(7), request(8), request(9)));
    pin_all(pins, *b, 0);
    p.push(std::move(b), t0);
    for (std::int64_t k : {7, 9}) {
        auto later = request(k, &answered, "later" + std::to_string(k));
        pin_all(pins, *later, 0);
        p.push(std::move(later), t0 + 1ms);
    }
    p.on_aborted(t0);
    error(p, "40P01", t0);
    p.on_aborted(t0);
    auto d = p.on_sync(t0 + 2ms);
    unpin_all(pins, *d.done);
    BOOST_TEST(pins.count(7) == 1u);
    BOOST_TEST(pins.count(8) == 0u);
    auto fates = pg::settle_batch(*d.done, pins);
    BOOST_TEST((fates == std::vector{part_fate::later_write, part_fate::own_outage,
                                     part_fate::later_write}));
    BOOST_TEST((p.front_since() == t0 + 2ms));  // the later write's watchdog starts now

    // Without the later writes, the same failure resends k7 and k9.
    pg::key_pins empty;
    fates = pg::settle_batch(*d.done, empty);
    BOOST_TEST((fates == std::vector{part_fate::resend, part_fate::own_outage, part_fate::resend}));

    // The later writes complete in their order behind the batch.
    p.on_rows(rows(), t0);
    auto l7 = p.on_sync(t0);
    BOOST_TEST(l7.done->key == 7);
    l7.done->handler(std::move(l7.done->res));
    p.on_rows(rows(), t0);
    auto l9 = p.on_sync(t0);
    BOOST_TEST(l9.done->key == 9);
    l9.done->handler(std::move(l9.done->res));
    BOOST_TEST((answered == std::vector<std::string>{"later7:0", "later9:0"}));
}

BOOST_AUTO_TEST_CASE(a_commit_time_error_fails_the_whole_batch) {
    pg::pipeline p;
    pg::key_pins pins;
    auto b = batch_of(list(request(1), request(2)));
    p.push(std::move(b), t0);
    p.on_rows(rows(), t0);
    p.on_rows(rows(), t0);
    error(p, "40001", t0);  // a third result: the batch's own (serialization failure at commit)
    auto d = p.on_sync(t0);
    BOOST_TEST(d.done->parts[0]->succeeded());
    BOOST_TEST(d.done->parts[1]->succeeded());
    BOOST_TEST(!pg::batch_committed(*d.done));
    auto fates = pg::settle_batch(*d.done, pins);
    BOOST_TEST((fates == std::vector{part_fate::resend, part_fate::resend}));
}

BOOST_AUTO_TEST_SUITE_END()
