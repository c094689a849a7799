#include "neptun/redis/protocol.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <charconv>
#include <new>

namespace neptun::redis {

std::string_view error_word(std::string_view text) {
    auto end = text.find_first_of(" \r\n");
    auto word = text.substr(0, end);
    if (word.size() > 32) word = word.substr(0, 32);
    return word;
}

void append_command(std::string& out, std::span<const std::string_view> args) {
    char num[24];
    auto put_len = [&](char lead, std::size_t n) {
        out.push_back(lead);
        auto [p, ec] = std::to_chars(num, num + sizeof num, n);
        (void)ec;
        out.append(num, p);
        out.append("\r\n", 2);
    };
    put_len('*', args.size());
    for (auto a : args) {
        put_len('$', a.size());
        out.append(a);
        out.append("\r\n", 2);
    }
}

resp_reader::resp_reader() : reader_(redisReaderCreate()) {
    if (!reader_) throw std::bad_alloc();
}

resp_reader::~resp_reader() {
    redisReaderFree(reader_);
}

void resp_reader::reply_deleter::operator()(redisReply* r) const {
    freeReplyObject(r);
}

bool resp_reader::feed(const char* data, std::size_t n) {
    return redisReaderFeed(reader_, data, n) == REDIS_OK;
}

resp_reader::reply_ptr resp_reader::next(bool& broken) {
    void* r = nullptr;
    if (redisReaderGetReply(reader_, &r) != REDIS_OK) {
        broken = true;
        return nullptr;
    }
    return reply_ptr(static_cast<redisReply*>(r));
}

void resp_reader::reset() {
    redisReaderFree(reader_);
    reader_ = redisReaderCreate();
    if (!reader_) throw std::bad_alloc();
}

milliseconds backoff::next(std::mt19937& rng) const {
    auto base = std::min<std::int64_t>(max.count(), min.count() << std::min(failures, 16u));
    std::uniform_int_distribution<std::int64_t> jitter(base / 2, base);
    return milliseconds(jitter(rng));
}

connection_machine::connection_machine(connection_options opts) : opts_(std::move(opts)) {}

void connection_machine::send_internal(purpose what, std::initializer_list<std::string_view> args,
                                       clock::time_point deadline) {
    append_command(out_, args);
    fifo_.push_back(pending{what, {}, deadline, {}});
    ++pushed_;
}

void connection_machine::forget_queue() {
    fifo_.clear();
    popped_ = pushed_;
    deadlines_ = {};
}

void connection_machine::on_open(clock::time_point now) {
    forget_queue();
    out_.clear();
    answers_.clear();
    reader_.reset();
    drop_.reset();
    handshake_error_.clear();
    ping_deadline_.reset();
    state_ = state::handshake;
    handshake_deadline_ = now + opts_.handshake_timeout;
    // Pipelined: one write, and the PING's reply says every step before it answered.
    if (opts_.auth) {
        if (opts_.username.empty())
            send_internal(purpose::auth, {"AUTH", opts_.password}, handshake_deadline_);
        else
            send_internal(purpose::auth, {"AUTH", opts_.username, opts_.password},
                          handshake_deadline_);
    }
    if (opts_.db != 0) {
        auto db = std::to_string(opts_.db);
        send_internal(purpose::select, {"SELECT", db}, handshake_deadline_);
    }
    if (opts_.check_role_master) send_internal(purpose::role, {"ROLE"}, handshake_deadline_);
    send_internal(purpose::handshake_ping, {"PING"}, handshake_deadline_);
}

void connection_machine::on_close() {
    if (state_ != state::ready) ++backoff_.failures;
    state_ = state::closed;
    for (auto& p : fifo_)
        if (p.done) answers_.push_back({std::move(p.done), reply{}, p.submitted});
    forget_queue();
    out_.clear();
    ping_deadline_.reset();
}

std::optional<clock::time_point> connection_machine::submit(std::span<const std::string_view> args,
                                                            clock::time_point deadline,
                                                            net::completion<reply> done,
                                                            clock::time_point now) {
    if (state_ != state::ready || drop_ || deadline <= now || fifo_.size() >= opts_.max_waiting) {
        if (deadline <= now && state_ == state::ready) ++stats_.timeouts;
        answers_.push_back({std::move(done), reply{}, now});
        return std::nullopt;
    }
    append_command(out_, args);
    fifo_.push_back(pending{purpose::user, std::move(done), deadline, now});
    deadlines_.push({deadline, pushed_++});
    return deadline;
}

void connection_machine::drop(std::string why) {
    if (!drop_) drop_ = std::move(why);
}

void connection_machine::on_bytes(const char* data, std::size_t n, clock::time_point now) {
    if (drop_ || state_ == state::closed) return;
    if (!reader_.feed(data, n)) {
        drop("out of memory");
        return;
    }
    for (;;) {
        bool broken = false;
        auto r = reader_.next(broken);
        if (broken) {
            drop("protocol error");
            return;
        }
        if (!r) return;
        if (fifo_.empty()) {
            // A reply nobody asked for (a push, or a server out of step): nothing is safe.
            drop("unexpected reply");
            return;
        }
        auto p = std::move(fifo_.front());
        fifo_.pop_front();
        ++popped_;
        handle(p, *r, now);
        if (drop_) return;
    }
}

void connection_machine::handle(pending& p, const redisReply& r, clock::time_point now) {
    bool is_error = r.type == REDIS_REPLY_ERROR;
    auto text = [&] { return std::string_view(r.str ? r.str : "", r.str ? r.len : 0); };
    switch (p.what) {
        case purpose::user: {
            if (!p.done) {
                ++stats_.late_replies;  // its caller gave up: read and dropped
                return;
            }
            reply out;
            switch (r.type) {
                case REDIS_REPLY_STRING:
                case REDIS_REPLY_STATUS:
                    out.type = reply::kind::string;
                    out.value.assign(r.str, r.len);
                    break;
                case REDIS_REPLY_NIL:
                    out.type = reply::kind::nil;
                    break;
                case REDIS_REPLY_INTEGER:
                    out.type = reply::kind::integer;
                    out.number = r.integer;
                    break;
                case REDIS_REPLY_ERROR:
                    out.type = reply::kind::error;
                    out.value = error_word(text());
                    break;
                default:
                    out.type = reply::kind::error;
                    out.value = "UNEXPECTED";
            }
            answers_.push_back({std::move(p.done), std::move(out), p.submitted});
            return;
        }
        case purpose::auth:
        case purpose::select:
        case purpose::handshake_ping:
            if (is_error) {
                handshake_error_ = error_word(text());
                drop(std::string(p.what == purpose::auth     ? "AUTH failed: "
                                 : p.what == purpose::select ? "SELECT failed: "
                                                             : "PING failed: ") +
                     handshake_error_);
                return;
            }
            if (p.what == purpose::handshake_ping && state_ == state::handshake) {
                state_ = state::ready;
                backoff_.failures = 0;  // the first good reply on this connection
                next_ping_ = now + opts_.health_interval;
            }
            return;
        case purpose::role:
            if (r.type == REDIS_REPLY_ARRAY && r.elements > 0 &&
                r.element[0]->type == REDIS_REPLY_STRING &&
                std::string_view(r.element[0]->str, r.element[0]->len) == "master")
                return;
            handshake_error_ = is_error ? std::string(error_word(text())) : "not master";
            drop("ROLE is not master");
            return;
        case purpose::health_ping:
            ping_deadline_.reset();
            if (is_error) drop("health PING failed: " + std::string(error_word(text())));
            return;
    }
}

void connection_machine::on_timer(clock::time_point now) {
    if (drop_ || state_ == state::closed) return;
    if (state_ == state::handshake) {
        if (now >= handshake_deadline_) drop("handshake timed out");
        return;
    }
    while (!deadlines_.empty() && deadlines_.top().first <= now) {
        auto seq = deadlines_.top().second;
        deadlines_.pop();
        if (seq < popped_) continue;  // its reply came first
        auto& p = fifo_[seq - popped_];
        if (p.done) {
            ++stats_.timeouts;
            answers_.push_back({std::move(p.done), reply{}, p.submitted});
        }
    }
    if (ping_deadline_ && now >= *ping_deadline_) {
        ++stats_.health_timeouts;
        drop("health check timed out");
        return;
    }
    if (!ping_deadline_ && now >= next_ping_) {
        ping_deadline_ = now + opts_.health_timeout;
        send_internal(purpose::health_ping, {"PING"}, *ping_deadline_);
        next_ping_ = now + opts_.health_interval;
    }
}

clock::time_point connection_machine::next_timer() const {
    if (drop_ || state_ == state::closed) return clock::time_point::max();
    if (state_ == state::handshake) return handshake_deadline_;
    auto t = ping_deadline_ ? *ping_deadline_ : next_ping_;
    if (!deadlines_.empty() && deadlines_.top().first < t) t = deadlines_.top().first;
    return t;
}

std::optional<invalidation> parse_invalidation(const redisReply& r) {
    auto is = [](const redisReply* e, std::string_view want) {
        return e->type == REDIS_REPLY_STRING && std::string_view(e->str, e->len) == want;
    };
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 3 || !is(r.element[0], "message") ||
        !is(r.element[1], "__redis__:invalidate"))
        return std::nullopt;
    const auto* keys = r.element[2];
    invalidation out;
    if (keys->type == REDIS_REPLY_NIL) {
        out.everything = true;
        return out;
    }
    if (keys->type != REDIS_REPLY_ARRAY) return std::nullopt;
    out.keys.reserve(keys->elements);
    for (std::size_t i = 0; i < keys->elements; ++i) {
        const auto* k = keys->element[i];
        if (k->type != REDIS_REPLY_STRING) return std::nullopt;
        out.keys.emplace_back(k->str, k->len);
    }
    return out;
}

std::optional<std::pair<std::string, std::uint16_t>> parse_master_addr(const redisReply& r) {
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 2) return std::nullopt;
    const auto* host = r.element[0];
    const auto* port = r.element[1];
    if (host->type != REDIS_REPLY_STRING || port->type != REDIS_REPLY_STRING) return std::nullopt;
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port->str, port->str + port->len, p);
    if (ec != std::errc() || end != port->str + port->len || p == 0 || p > 65535)
        return std::nullopt;
    if (host->len == 0) return std::nullopt;
    return std::pair{std::string(host->str, host->len), static_cast<std::uint16_t>(p)};
}

std::optional<std::pair<std::string, std::uint16_t>> parse_switch_master(
    const redisReply& r, std::string_view master_name) {
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 3) return std::nullopt;
    for (std::size_t i = 0; i < 3; ++i)
        if (r.element[i]->type != REDIS_REPLY_STRING) return std::nullopt;
    auto str = [&](std::size_t i) {
        return std::string_view(r.element[i]->str, r.element[i]->len);
    };
    if (str(0) != "message" || str(1) != "+switch-master") return std::nullopt;
    // "<name> <old ip> <old port> <new ip> <new port>"
    std::string_view words[5];
    std::string_view rest = str(2);
    for (int i = 0; i < 5; ++i) {
        auto sp = rest.find(' ');
        words[i] = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
        if (words[i].empty()) return std::nullopt;
    }
    if (!rest.empty() || words[0] != master_name) return std::nullopt;
    unsigned p = 0;
    auto [end, ec] = std::from_chars(words[4].data(), words[4].data() + words[4].size(), p);
    if (ec != std::errc() || end != words[4].data() + words[4].size() || p == 0 || p > 65535)
        return std::nullopt;
    return std::pair{std::string(words[3]), static_cast<std::uint16_t>(p)};
}

}  // namespace neptun::redis
