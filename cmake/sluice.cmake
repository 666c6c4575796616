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

# sluice_library(NAME SOURCES a.cc b.cc DEPS dep1 dep2)
function(sluice_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${SLUICE_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# sluice_test(NAME SOURCES a_test.cc DEPS lib [LABELS unit|integration] [TIMEOUT s]
#             [FIXTURES f ...] [ENVIRONMENT VAR=value ...])
# A GoogleTest binary registered with CTest; integration tests are labelled so they can be
# selected (`ctest -L integration`) and run serially against the real servers they start.
# FIXTURES names CTest fixtures every test of the binary requires (a Kafka cluster started once
# for all of them, see tests/CMakeLists.txt).
function(sluice_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS;FIXTURES;ENVIRONMENT" ${ARGN})
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
  if("integration" IN_LIST ARG_LABELS)
    # Integration tests start real servers; one at a time keeps them off each other's CPU.
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
