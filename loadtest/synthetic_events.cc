#include "loadtest/synthetic_events.h"

#include <cstdio>

namespace sluice::loadtest {

using ingest::kTypeArray;
using ingest::kTypeBoolean;
using ingest::kTypeInteger;
using ingest::kTypeNumber;
using ingest::kTypeObject;
using ingest::kTypeString;

namespace {

/// Words strings are made of; a few are not ASCII, as real page names and user agents are not.
constexpr const char* kWords[] = {"view",  "edit",    "Special", "Recherche", "Main_Page",
                                  "wiki",  "Spécial", "検索",    "Zürich",    "mobile",
                                  "en-GB", "Mozilla", "Gecko",   "desktop",   "1.42.0"};

}  // namespace

SyntheticEvents::SyntheticEvents(const ingest::Schema& schema, uint64_t seed)
    : schema_(schema), seed_(seed), rng_(seed) {}

void SyntheticEvents::append(uint64_t seq, std::string& out) {
  char head[160];
  // Event times spread over the last few hours before a fixed instant.
  const long long ms = 1'700'000'000'000LL + static_cast<long long>(seq % 10'000'000) * 7;
  std::snprintf(head, sizeof head, "{\"uuid\":\"%016llx%016llx\",\"timestamp\":%lld,",
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seq), ms);
  out += head;
  out += "\"schema\":\"";
  out += schema_.name;
  out += "\",\"revision\":";
  out += std::to_string(schema_.revision);
  out +=
      ",\"wiki\":\"enwiki\",\"webHost\":\"en.wikipedia.org\",\"userAgent\":"
      "{\"browser_family\":\"Firefox\",\"os_family\":\"Linux\",\"is_bot\":false},"
      "\"event\":";
  append_object(schema_.root, out);
  out += '}';
}

void SyntheticEvents::append_object(const ingest::ObjectRule& rule, std::string& out) {
  out += '{';
  bool first = true;
  for (const auto& field : rule.fields) {
    if (!field.required && rng_() % 5 == 0) continue;
    if (!first) out += ',';
    first = false;
    out += '"';
    out += field.name;  // schema property names need no JSON escaping in practice
    out += "\":";
    append_value(field, out);
  }
  out += '}';
}

void SyntheticEvents::append_value(const ingest::FieldRule& field, std::string& out) {
  if (field.has_enum) {
    const size_t n =
        field.enum_strings.size() + field.enum_numbers.size() + field.enum_bools.size();
    size_t i = n == 0 ? 0 : rng_() % n;
    if (i < field.enum_strings.size()) {
      out += '"';
      out += field.enum_strings[i];
      out += '"';
      return;
    }
    i -= field.enum_strings.size();
    if (i < field.enum_numbers.size()) {
      out += std::to_string(static_cast<long long>(field.enum_numbers[i]));
      return;
    }
    out += field.enum_bools[i - field.enum_numbers.size()] ? "true" : "false";
    return;
  }
  if (field.object) {
    append_object(*field.object, out);
  } else if (field.types & kTypeString) {
    append_string(out);
  } else if (field.types & kTypeInteger) {
    out += std::to_string(rng_() % 100'000);
  } else if (field.types & kTypeNumber) {
    out += std::to_string(rng_() % 10'000);
    out += '.';
    out += std::to_string(rng_() % 100);
  } else if (field.types & kTypeBoolean) {
    out += rng_() & 1 ? "true" : "false";
  } else if (field.types & kTypeObject) {
    out += "{\"k\":1}";
  } else if (field.types & kTypeArray) {
    out += "[1,2,3]";
  } else {
    out += "null";
  }
}

void SyntheticEvents::append_string(std::string& out) {
  out += '"';
  const size_t words = 1 + rng_() % 4;
  for (size_t w = 0; w < words; ++w) {
    if (w > 0) out += '_';
    out += kWords[rng_() % std::size(kWords)];
  }
  out += '"';
}

}  // namespace sluice::loadtest
