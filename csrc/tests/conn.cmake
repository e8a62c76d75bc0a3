# conn.c and pool.c on a socketpair (test_conn.c plays the server): one
# ctest test per case.
add_executable(test_conn ${CMAKE_CURRENT_LIST_DIR}/test_conn.c)
target_link_libraries(test_conn PRIVATE levr_core)
foreach(case queue_fifo pipeline deadline_fails_every_slot
             blocking_extends_deadline eof_fails_every_slot max_pending
             read_wait_survives_commands abandon session_from_replies
             pool_rules pool_free_closes_idle shared_reads_split_reply
             shared_reads_pause timeout_off_and_on)
  add_test(NAME conn.${case} COMMAND test_conn ${case})
  set_tests_properties(conn.${case} PROPERTIES TIMEOUT 30 LABELS conn)
endforeach()
