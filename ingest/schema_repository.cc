#include "ingest/schema_repository.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "common/logging.h"
#include "common/text.h"
#include "common/thread_name.h"
#include "ingest/schema_id.h"

namespace sluice::ingest {
namespace {

std::string key_of(std::string_view name, int64_t revision) {
  std::string key(name);
  key += '\0';
  key += std::to_string(revision);
  return key;
}

struct Body {
  std::string text;
  size_t max = 0;
  bool too_large = false;
};

size_t on_data(char* data, size_t size, size_t count, void* user) {
  auto& body = *static_cast<Body*>(user);
  const size_t n = size * count;
  if (body.text.size() + n > body.max) {
    body.too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  body.text.append(data, n);
  return n;
}

SchemaSource::Answer pending(std::string detail) {
  SchemaSource::Answer out;
  out.detail = std::move(detail);
  return out;
}

int on_progress(void* stopping, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(stopping)->load() ? 1 : 0;  // non-zero aborts
}

/// Whether an HTTP status other than 200 says for certain there is no such revision: a 4xx,
/// but for those that say the repository refuses Sluice (a configuration to mend) or asks to
/// come back later.
bool definitely_absent(long status) {
  return status >= 400 && status < 500 && status != 401 && status != 403 && status != 407 &&
         status != 408 && status != 429;
}

std::chrono::milliseconds retry_after(int failures) {
  const int shift = std::clamp(failures - 1, 0, 5);
  return std::min(std::chrono::milliseconds(1000LL << shift), std::chrono::milliseconds(30'000));
}

}  // namespace

SchemaRepository::SchemaRepository(SchemaRepositoryOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  curl_ = curl_easy_init();
  thread_ = std::thread([this] {
    name_this_thread("sluice-schemas");
    run();
  });
}

SchemaRepository::~SchemaRepository() {
  stopping_ = true;  // a fetch in progress ends at its next progress callback
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

std::string SchemaRepository::url_for(std::string_view name, int64_t revision) const {
  // Names are valid_schema_name's (letters, digits, '_', '-', '.', and '/' between a title's
  // segments): nothing to escape.
  return options_.url + "/" + schema_file(name, revision);
}

SchemaSource::Answer SchemaRepository::ask(std::string_view name, int64_t revision) {
  std::string key = key_of(name, revision);
  const auto now = clock_.now();
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (now - forgot_at_ >= std::chrono::minutes(1) || entries_.size() >= kMaxTracked) {
      forget_idle(now);
    }
    if (entries_.size() >= kMaxTracked) {
      return pending("too many schema revisions waiting for the repository");
    }
    Entry fresh;
    fresh.name = std::string(name);
    fresh.revision = revision;
    it = entries_.emplace(key, std::move(fresh)).first;
    queue_.push_back(std::move(key));
    wake_.notify_one();
  }
  Entry& e = it->second;
  e.last_asked = now;
  Answer out;
  switch (e.step) {
    case Step::kQueued:
    case Step::kFetching:
      out = pending(e.answer.detail);
      break;
    case Step::kAnswered:
      out = std::move(e.answer);
      entries_.erase(it);
      break;
    case Step::kFailed:
      if (now >= e.retry_at) {
        e.step = Step::kQueued;
        queue_.push_back(std::move(key));
        wake_.notify_one();
      }
      out = pending(e.answer.detail);
      out.retry_at = e.retry_at;
      break;
  }
  return out;
}

void SchemaRepository::forget_idle(Clock::time_point now) {
  forgot_at_ = now;
  std::erase_if(entries_, [&](const auto& kv) {
    const Entry& e = kv.second;
    return (e.step == Step::kAnswered || e.step == Step::kFailed) &&
           now - e.last_asked >= kForgetAfter;
  });
}

size_t SchemaRepository::unanswered() const {
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(), [](const auto& kv) {
    return kv.second.step != Step::kAnswered;
  }));
}

SchemaRepository::Stats SchemaRepository::stats() const {
  std::lock_guard lock(mu_);
  Stats out = stats_;
  out.waiting = unanswered();
  return out;
}

void SchemaRepository::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    const std::string key = std::move(queue_.front());
    queue_.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.step != Step::kQueued) continue;
    it->second.step = Step::kFetching;
    const std::string url = url_for(it->second.name, it->second.revision);
    lock.unlock();
    Answer answer = fetch(url);
    lock.lock();
    if (stop_) return;  // aborted by the destructor: not the repository's failure
    it = entries_.find(key);  // still there: what is erased is answered, failed or idle
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    const bool answered = answer.state != State::kPending;
    if (answered) {
      ++(answer.state == State::kFound ? stats_.fetched : stats_.not_found);
      e.step = Step::kAnswered;
    } else {
      ++stats_.failures;
      stats_.last_error = url + ": " + answer.detail;
      e.step = Step::kFailed;
      e.retry_at = clock_.now() + retry_after(++e.failures);
    }
    if (answered != stats_.reachable) {
      stats_.reachable = answered;
      if (answered) {
        logger("schemas")->info("the schema repository answers again ({})", url);
      } else {
        logger("schemas")->warn(
            "the schema repository does not answer ({}): events whose schema revision is not "
            "cached hold their partition until it does; nothing is dead-lettered for it",
            stats_.last_error);
      }
    }
    e.answer = std::move(answer);
    completed_.fetch_add(1);
  }
}

SchemaSource::Answer SchemaRepository::fetch(const std::string& url) {
  auto* h = static_cast<CURL*>(curl_);
  Answer out;
  if (h == nullptr) {
    out.detail = "libcurl could not be initialised";
    return out;
  }
  Body body;
  body.max = options_.max_bytes;
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  // An https repository is not led to plain http by a redirect.
  curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
                   options_.url.starts_with("https://") ? "https" : "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<int64_t>(options_.timeout.count(), 5000)));
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_bytes));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) {
    // That file's CAs only: not also the folder of system CAs libcurl was built with.
    curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
  }
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &stopping_);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice");
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);  // `error` lives no longer than this call
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (body.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    out.state = State::kNotFound;
    out.detail = "its answer is larger than " + std::to_string(options_.max_bytes) + " bytes";
    return out;
  }
  if (rc != CURLE_OK) {
    out.detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
    bound(out.detail, 300);
    return out;
  }
  if (status == 200) {
    out.state = State::kFound;
    out.text = std::move(body.text);
  } else if (definitely_absent(status)) {
    out.state = State::kNotFound;
    out.detail = "HTTP " + std::to_string(status);
  } else {
    out.detail = "HTTP " + std::to_string(status);
  }
  return out;
}

}  // namespace sluice::ingest
