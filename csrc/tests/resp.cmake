# Codec unit tests: one ctest test per case of test_resp.c, so a failure
# names the case. The case list is read from the TEST(name) lines, and
# editing the source re-runs the configure step to pick up new cases.
add_executable(test_resp ${CMAKE_CURRENT_LIST_DIR}/test_resp.c)
target_link_libraries(test_resp PRIVATE levr_resp m)
# The enomem_retry case fails chosen allocations of the codec through the
# GNU linker's --wrap; elsewhere that case does nothing.
if(NOT APPLE AND CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
  target_link_options(test_resp PRIVATE -Wl,--wrap=malloc -Wl,--wrap=realloc)
  target_compile_definitions(test_resp PRIVATE LEVR_TEST_WRAP_MALLOC)
endif()

set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/test_resp.c)
file(STRINGS ${CMAKE_CURRENT_LIST_DIR}/test_resp.c levr_resp_cases
     REGEX "^TEST\\([a-z0-9_]+\\)")
foreach(line IN LISTS levr_resp_cases)
  string(REGEX REPLACE "^TEST\\(([a-z0-9_]+)\\).*" "\\1" case "${line}")
  add_test(NAME resp.${case} COMMAND test_resp ${case})
  set_tests_properties(resp.${case} PROPERTIES TIMEOUT 60 LABELS resp)
endforeach()
