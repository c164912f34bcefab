# The one helper that declares a module library (STYLE.md rule 1): moat_module(name DEPS ...)
# creates target moat_<name> with alias moat::<name> from <name>/src/*.cc, public headers in
# <name>/include. Project targets get -Wall -Wextra -Werror through moat_strict().

function(moat_strict target)
  # Request structs are built with designated initializers that leave defaults out on purpose.
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wno-missing-field-initializers)
endfunction()

function(moat_module name)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  set(dir ${PROJECT_SOURCE_DIR}/${name})
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${dir}/src/*.cc)
  add_library(moat_${name} STATIC ${sources})
  add_library(moat::${name} ALIAS moat_${name})
  target_include_directories(moat_${name} PUBLIC ${dir}/include PRIVATE ${dir}/src)
  target_link_libraries(moat_${name} PUBLIC ${ARG_DEPS})
  moat_strict(moat_${name})
endfunction()

# moat_test(name SOURCES ... DEPS ... LABELS ...): one GoogleTest binary, tests discovered
# into ctest with the given labels (unit, golden, netns, system).
function(moat_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE MOAT_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                             MOAT_BUILD_DIR="${PROJECT_BINARY_DIR}")
  moat_strict(${name})
  gtest_discover_tests(${name} PROPERTIES LABELS "${ARG_LABELS}" DISCOVERY_TIMEOUT 60)
endfunction()
