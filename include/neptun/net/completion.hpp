// A move-only, type-erased completion handler taking one value: how the Redis client and the
// PostgreSQL pool keep a waiting coroutine's handler until the reply arrives.
// (asio::any_completion_handler in Boost 1.81 recurses forever when moved: not usable.)
#pragma once

#include <memory>
#include <utility>

namespace neptun::net {

template <typename T>
class completion {
  public:
    completion() = default;
    template <typename Handler>
    explicit completion(Handler&& h)
        : impl_(std::make_unique<model<std::decay_t<Handler>>>(std::forward<Handler>(h))) {}

    explicit operator bool() const { return impl_ != nullptr; }

    // Calls the handler once; the completion is empty afterwards.
    void operator()(T value) {
        auto impl = std::move(impl_);
        impl->call(std::move(value));
    }

  private:
    struct concept_t {
        virtual ~concept_t() = default;
        virtual void call(T value) = 0;
    };
    template <typename Handler>
    struct model final : concept_t {
        explicit model(Handler&& h) : handler(std::move(h)) {}
        explicit model(const Handler& h) : handler(h) {}
        void call(T value) override { std::move(handler)(std::move(value)); }
        Handler handler;
    };
    std::unique_ptr<concept_t> impl_;
};

}  // namespace neptun::net
