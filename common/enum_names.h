#pragma once
/// The names of an enum's values (for logs, status and metrics) as a table, not a switch: the
/// names listed in the order the enumerators are declared, which must run from 0 without gaps.
/// `Last` is the last enumerator; a table that does not name every value does not compile.
///
///   enum class Mode { kDirect, kSpooling };
///   inline constexpr EnumNames<Mode, Mode::kSpooling, 2> kModeNames{{"direct", "spooling"}};
///   kModeNames(Mode::kSpooling)  // "spooling"

#include <array>
#include <cstddef>

namespace sluice {

template <typename E, E Last, size_t N>
struct EnumNames {
  static_assert(N == static_cast<size_t>(Last) + 1, "name every value of the enum, in order");
  std::array<const char*, N> names;
  /// `unknown` for a value outside the enum (a cast from a number).
  constexpr const char* operator()(E value, const char* unknown = "?") const {
    const auto i = static_cast<size_t>(value);
    return i < N ? names[i] : unknown;
  }
};

}  // namespace sluice
