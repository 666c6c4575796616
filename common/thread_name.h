#pragma once
/// Names the calling thread as `top -H`, `perf` and gdb show it (at most 15 bytes: longer names
/// are cut). Never called on the main thread, whose name is the process's own (`pgrep sluice`).

#include <pthread.h>

#include <string>
#include <string_view>

namespace sluice {

inline void name_this_thread(std::string_view name) {
  const std::string cut(name.substr(0, 15));
  (void)pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace sluice
