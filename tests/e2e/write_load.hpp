// The write load of the fault tests (outages, failover): clients write 1, 2, 3... into the
// description of their own project, one request at a time, and count what comes back. A
// test awaits acknowledged writes, runs its fault, awaits more, then checks that every
// acknowledged write survived. Every wait is bounded and notices a dead server.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "e2e/common.hpp"

namespace neptun::test {

class write_load {
  public:
    using steady = std::chrono::steady_clock;

    write_load(server_process& srv, std::vector<seeded_user> users)
        : srv_(srv), users_(std::move(users)), last_acknowledged_(users_.size(), 0) {
        for (std::size_t c = 0; c < users_.size(); ++c)
            threads_.emplace_back([this, c] { run(c); });
    }
    ~write_load() { stop(); }
    write_load(const write_load&) = delete;
    write_load& operator=(const write_load&) = delete;

    // Waits until `target` writes in all were acknowledged; false (with the server's log in
    // the test output) after `limit` or once the server is gone.
    bool await_ok(int target, std::chrono::seconds limit = std::chrono::seconds(60)) {
        auto deadline = steady::now() + limit;
        std::unique_lock lock(mutex_);
        while (ok_ < target && steady::now() < deadline && srv_.process.running())
            changed_.wait_for(lock, std::chrono::milliseconds(100));  // the slice notices a death
        if (ok_ >= target) return true;
        lock.unlock();
        stop();
        BOOST_TEST_MESSAGE("server log:\n" << srv_.process.log());
        return false;
    }

    // From now on the fault is in effect: back_after() measures from here.
    void mark_fault() { fault_at_ = steady::now().time_since_epoch().count(); }
    // From the fault to the acknowledgement of the first write sent after it (max() if
    // none was).
    std::chrono::milliseconds back_after() const {
        if (first_ok_after_ == 0 || fault_at_ == 0) return std::chrono::milliseconds::max();
        return std::chrono::duration_cast<std::chrono::milliseconds>(
            steady::duration(first_ok_after_.load() - fault_at_.load()));
    }
    steady::time_point first_ok_after() const {
        return steady::time_point(steady::duration(first_ok_after_.load()));
    }

    void stop() {
        stop_ = true;
        for (auto& t : threads_) t.join();
        threads_.clear();
    }

    int ok() {
        std::lock_guard lock(mutex_);
        return ok_;
    }
    int unavailable() const { return unavailable_; }
    int other() const { return other_; }

    // After stop(): every acknowledged write is in the row `description_of` reads; a write
    // answered 503 may or may not have committed, so the row holds the last 200 or one more.
    void check_survived(const std::function<std::string(std::int64_t project_id)>& description_of) {
        stop();  // the clients' counts are final only once they are joined
        for (std::size_t c = 0; c < users_.size(); ++c) {
            auto text = description_of(users_[c].project_id);
            BOOST_REQUIRE_MESSAGE(!text.empty(), "no row for project " << users_[c].project_id);
            auto stored = std::stol(text);
            BOOST_TEST(stored >= last_acknowledged_[c]);
            BOOST_TEST(stored <= last_acknowledged_[c] + 1);
        }
    }

  private:
    void run(std::size_t c) {
        try {
            write(c);
        } catch (const std::exception&) {
            ++other_;  // a client that throws counts as a wrong answer, never a terminate
        }
    }

    void write(std::size_t c) {
        const auto& u = users_[c];
        for (long v = 1; !stop_; ++v) {
            auto sent = steady::now().time_since_epoch().count();
            auto r = http_request(srv_.port, "PATCH", u.path(), json_auth(u),
                                  R"({"description":")" + std::to_string(v) + R"("})");
            if (r && r->status == 200) {
                auto now = steady::now().time_since_epoch().count();
                steady::rep zero = 0;
                if (fault_at_ != 0 && sent > fault_at_)
                    first_ok_after_.compare_exchange_strong(zero, now);
                last_acknowledged_[c] = v;
                {
                    std::lock_guard lock(mutex_);
                    ++ok_;
                }
                changed_.notify_all();
            } else if (r && r->status == 503 && r->header("Retry-After") == "1") {
                ++unavailable_;
            } else {
                ++other_;
            }
        }
    }

    server_process& srv_;
    std::vector<seeded_user> users_;
    std::vector<long> last_acknowledged_;  // each written by its own client thread only
    std::vector<std::thread> threads_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::condition_variable changed_;
    int ok_ = 0;
    std::atomic<int> unavailable_{0}, other_{0};
    std::atomic<steady::rep> fault_at_{0}, first_ok_after_{0};
};

}  // namespace neptun::test
