// A fixed pool of threads running scheduled closures in FIFO order.
#ifndef MICROBATCH_SERVER_CORE_LIFECYCLE_THREAD_POOL_H_
#define MICROBATCH_SERVER_CORE_LIFECYCLE_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "server/core/sync.h"

namespace microbatch::lifecycle {

// Thread-safe. Destruction runs every closure already scheduled, then joins
// the threads; Schedule() must not be called during or after destruction.
class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Schedule(std::function<void()> fn);

 private:
  void Loop();

  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace microbatch::lifecycle

#endif  // MICROBATCH_SERVER_CORE_LIFECYCLE_THREAD_POOL_H_
