#pragma once
/// Field name → index for one object of a schema, looked up once per field of every event (the
/// decoder's innermost loop). Open addressing over a power-of-two table; the hash mixes the
/// length with the first and last eight bytes of the name, which tells field names apart at a
/// fraction of the cost of hashing every byte, and a hit costs one comparison.
/// Immutable after build(); safe to share across threads.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::ingest {

class FieldTable {
 public:
  /// Builds the table; `names[i]` is the name of field i.
  void build(const std::vector<std::string>& names) {
    names_ = names;
    const size_t size = std::bit_ceil(std::max<size_t>(4, names_.size() * 2));
    mask_ = size - 1;
    slots_.assign(size, kEmpty);
    for (size_t i = 0; i < names_.size(); ++i) {
      size_t slot = hash(names_[i]) & mask_;
      while (slots_[slot] != kEmpty) slot = (slot + 1) & mask_;
      slots_[slot] = static_cast<int32_t>(i);
    }
  }

  /// The index of the field named `name`, or -1.
  int find(std::string_view name) const {
    if (slots_.empty()) return -1;
    for (size_t slot = hash(name) & mask_;; slot = (slot + 1) & mask_) {
      const int32_t i = slots_[slot];
      if (i == kEmpty) return -1;
      if (same(names_[static_cast<size_t>(i)], name)) return i;
    }
  }

  /// Equality, inlined eight bytes at a time: field names are short, and a library call per
  /// field of every event shows in profiles.
  static bool same(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    size_t i = 0;
    for (; i + 8 <= a.size(); i += 8) {
      uint64_t x = 0, y = 0;
      std::memcpy(&x, a.data() + i, 8);
      std::memcpy(&y, b.data() + i, 8);
      if (x != y) return false;
    }
    for (; i < a.size(); ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }

  static uint64_t hash(std::string_view s) {
    uint64_t head = 0, tail = 0;
    if (s.size() >= 8) {
      std::memcpy(&head, s.data(), 8);
      std::memcpy(&tail, s.data() + s.size() - 8, 8);
    } else {
      std::memcpy(&head, s.data(), s.size());
    }
    uint64_t h = (s.size() * 0x9e3779b97f4a7c15ull) ^ head;
    h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
    h ^= tail;
    h = (h ^ (h >> 32)) * 0x94d049bb133111ebull;
    return h ^ (h >> 29);
  }

 private:
  static constexpr int32_t kEmpty = -1;
  std::vector<std::string> names_;
  std::vector<int32_t> slots_;
  size_t mask_ = 0;
};

}  // namespace sluice::ingest
