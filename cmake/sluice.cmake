include(GoogleTest)

# One helper each for a library, a test and a benchmark, so every target is built the same way:
# C++20, the same warnings (errors when SLUICE_WERROR is on), the project root on the include path.

# CI and scripts/test turn warnings into errors; packagers and users building a release leave
# it off, so a newer compiler's new warning never breaks their build.
option(SLUICE_WERROR "Treat compiler warnings as errors" OFF)
set(SLUICE_WARNINGS -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(SLUICE_WERROR)
  list(APPEND SLUICE_WARNINGS -Werror)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  # GCC 12 at -O2/-O3 reports -Wrestrict overlaps inside std::string's own inline code
  # (operator+, insert, replace: GCC bugs 105329 and 105651, fixed in 13) — false positives
  # that come and go with inlining, one new place per change. The Release build (CI's
  # package job) is where they show.
  list(APPEND SLUICE_WARNINGS -Wno-restrict)
endif()
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # librdkafka's RD_KAFKA_V_* macros are GNU statement expressions, which clang's -Wpedantic
  # names (gcc accepts them quietly).
  list(APPEND SLUICE_WARNINGS -Wno-gnu-statement-expression)
endif()

# sluice_library(NAME SOURCES a.cc b.cc DEPS dep1 dep2)
function(sluice_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${SLUICE_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# sluice_test(NAME SOURCES a_test.cc DEPS lib [LABELS unit|integration] [TIMEOUT s]
#             [FIXTURES f] [ENVIRONMENT VAR=value] [LOCKS resource] [SERIAL])
# A GoogleTest binary registered with CTest; integration tests are labelled so they can be
# selected (`ctest -L integration`). FIXTURES names a CTest fixture every test of the binary
# requires (a Kafka cluster started once for all of them, see tests/CMakeLists.txt); LOCKS a
# resource its tests take turns at with other binaries' (that cluster); SERIAL runs each of its
# tests alone.
function(sluice_test name)
  cmake_parse_arguments(ARG "SERIAL" "TIMEOUT" "SOURCES;DEPS;LABELS;FIXTURES;ENVIRONMENT;LOCKS"
                        ${ARGN})
  # gtest_discover_tests passes PROPERTIES on as a flat list, which splits a list value into
  # words of their own: one value each, or the properties come out wrong.
  foreach(single LABELS FIXTURES ENVIRONMENT LOCKS)
    list(LENGTH ARG_${single} count)
    if(count GREATER 1)
      message(FATAL_ERROR "sluice_test(${name}): one ${single} value at most, got ${ARG_${single}}")
    endif()
  endforeach()
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${SLUICE_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  # Tests find the trees through sluice_testing's compiled-in paths (see testing/CMakeLists.txt).
  set(props LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
  if(ARG_FIXTURES)
    list(APPEND props FIXTURES_REQUIRED "${ARG_FIXTURES}")
  endif()
  if(ARG_ENVIRONMENT)
    list(APPEND props ENVIRONMENT "${ARG_ENVIRONMENT}")
  endif()
  # Integration tests run two at a time (scripts/test: ctest -j2): each starts its own servers on
  # ports of its own, and most of their time is waiting on those servers. What they share is
  # locked: LOCKS names a shared resource (the Kafka cluster, whose brokers some tests kill);
  # SERIAL runs a test alone (the package test installs system-wide).
  if(ARG_LOCKS)
    # Tests that take turns at a resource are the run's critical path: started first (CTest
    # starts the costliest first), the others fill the second slot beside them.
    list(APPEND props RESOURCE_LOCK "${ARG_LOCKS}" COST 1000)
  endif()
  if(ARG_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  # One CTest test per GoogleTest case, so reports name what failed.
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${props})
endfunction()

# sluice_benchmark(NAME SOURCES a_benchmark.cc DEPS lib)
function(sluice_benchmark name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${SLUICE_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark)
endfunction()

# Sanitizer and fuzzing builds (clang; scripts/sanitize and scripts/fuzz configure them):
#   -DSLUICE_SANITIZE=address   AddressSanitizer + UndefinedBehaviorSanitizer, every target
#   -DSLUICE_SANITIZE=thread    ThreadSanitizer, every target
#   -DSLUICE_FUZZ=ON            libFuzzer targets (fuzz/); with SLUICE_SANITIZE=address the
#                               libraries also get coverage instrumentation, so one build tree
#                               serves the sanitized tests and the fuzz targets.
set(SLUICE_SANITIZE "" CACHE STRING "address (ASan+UBSan) or thread (TSan); empty for none")
option(SLUICE_FUZZ "Build the libFuzzer targets (clang)" OFF)
if(SLUICE_SANITIZE STREQUAL "address")
  set(sluice_san -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
elseif(SLUICE_SANITIZE STREQUAL "thread")
  set(sluice_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(NOT SLUICE_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SLUICE_SANITIZE must be address, thread or empty")
endif()
if(SLUICE_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SLUICE_FUZZ needs clang (CXX=clang++)")
  endif()
  list(APPEND sluice_san -fsanitize=fuzzer-no-link)
endif()
if(sluice_san)
  add_compile_options(${sluice_san})
  add_link_options(${sluice_san})
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 15)
    # Clang 14 destroys the temporaries of a full-expression that holds an immediate (consteval)
    # call — every fmt/spdlog format string — at the end of the enclosing block rather than of
    # the full-expression, which AddressSanitizer's use-after-scope check then reports: a false
    # positive (gcc and clang 15 get it right). In these builds format strings are checked at
    # run time instead of compile time; the normal build keeps the compile-time check.
    add_compile_definitions(FMT_CONSTEVAL=)
  endif()
endif()

# sluice_fuzzer(NAME SOURCES a_fuzzer.cc DEPS lib): a libFuzzer target (only with SLUICE_FUZZ).
function(sluice_fuzzer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${SLUICE_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
endfunction()
