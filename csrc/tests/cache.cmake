# cache.c (client-side caching, contract 17): one ctest test per TEST(name)
# of test_cache.c.
add_executable(test_cache ${CMAKE_CURRENT_LIST_DIR}/test_cache.c)
target_link_libraries(test_cache PRIVATE levr_core)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/test_cache.c)
file(STRINGS ${CMAKE_CURRENT_LIST_DIR}/test_cache.c levr_cache_cases
     REGEX "^TEST\\([a-z0-9_]+\\)")
foreach(line IN LISTS levr_cache_cases)
  string(REGEX REPLACE "^TEST\\(([a-z0-9_]+)\\).*" "\\1" case "${line}")
  add_test(NAME cache.${case} COMMAND test_cache ${case})
  set_tests_properties(cache.${case} PROPERTIES TIMEOUT 60 LABELS cache)
endforeach()
