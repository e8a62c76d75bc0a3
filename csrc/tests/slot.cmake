# Cluster slot and key-spec routing (slot.c, no uv, no Lua).
add_executable(test_slot ${CMAKE_CURRENT_LIST_DIR}/test_slot.c
               ${CMAKE_SOURCE_DIR}/csrc/client/slot.c)
target_include_directories(test_slot PRIVATE ${CMAKE_SOURCE_DIR}/csrc/client)
add_test(NAME slot COMMAND test_slot)
set_tests_properties(slot PROPERTIES TIMEOUT 60 LABELS slot)
