# TLS tests: csrc/net/tls.c against an in-memory OpenSSL server, and against
# a real redis-server with TLS. tls.c is compiled in directly so these run
# without the rest of levr_core.
add_executable(test_tls ${CMAKE_CURRENT_SOURCE_DIR}/test_tls.c
                        ${PROJECT_SOURCE_DIR}/csrc/net/tls.c)
target_include_directories(test_tls PRIVATE ${PROJECT_SOURCE_DIR}/csrc/net)
target_link_libraries(test_tls PRIVATE PkgConfig::SSL)

set(LEVR_TLS_CERTS ${CMAKE_CURRENT_BINARY_DIR}/tls-certs)
set(LEVR_TLS_REDIS ${CMAKE_CURRENT_BINARY_DIR}/tls-redis)
set(LEVR_TLS_REDIS_MTLS ${CMAKE_CURRENT_BINARY_DIR}/tls-redis-mtls)
set(LEVR_REDIS_SH ${PROJECT_SOURCE_DIR}/tools/redis-server.sh)

# Fixture: fresh certificates, made at test time.
add_test(NAME tls_certs_make
         COMMAND ${PROJECT_SOURCE_DIR}/tools/make-test-certs.sh
                 ${LEVR_TLS_CERTS})
add_test(NAME tls_certs_remove
         COMMAND ${CMAKE_COMMAND} -E rm -rf ${LEVR_TLS_CERTS})
set_tests_properties(tls_certs_make PROPERTIES FIXTURES_SETUP tls_certs)
set_tests_properties(tls_certs_remove PROPERTIES FIXTURES_CLEANUP tls_certs)

# Fixtures: redis-server on a TLS port only, without and with client
# certificates required. The start script prints "PORT TLSPORT"; the
# tests read it from DIR/ports. A failed start fails the fixture, and with
# it every test that needs it.
foreach(mode no yes)
  if(mode STREQUAL "no")
    set(dir ${LEVR_TLS_REDIS})
    set(fixture tls_redis)
  else()
    set(dir ${LEVR_TLS_REDIS_MTLS})
    set(fixture tls_redis_mtls)
  endif()
  add_test(NAME ${fixture}_start
           COMMAND sh -c "mkdir -p \"$0\" && rm -f \"$0/ports\" && \"$@\" \
> \"$0/ports.new\" && mv \"$0/ports.new\" \"$0/ports\""
                   ${dir} ${LEVR_REDIS_SH} start ${dir}
                   --port 0 --tls-port PORT2
                   --tls-cert-file ${LEVR_TLS_CERTS}/server.crt
                   --tls-key-file ${LEVR_TLS_CERTS}/server.key
                   --tls-ca-cert-file ${LEVR_TLS_CERTS}/ca.crt
                   --tls-auth-clients ${mode})
  add_test(NAME ${fixture}_stop COMMAND ${LEVR_REDIS_SH} stop ${dir})
  set_tests_properties(${fixture}_start PROPERTIES
    FIXTURES_SETUP ${fixture} FIXTURES_REQUIRED tls_certs TIMEOUT 30)
  set_tests_properties(${fixture}_stop PROPERTIES
    FIXTURES_CLEANUP ${fixture} TIMEOUT 30)
endforeach()

foreach(case handshake ip tls12 wrong_ca expired wrong_name no_verify
             client_cert garbage truncated close_notify cert_file_env
             ctx_errors bulk)
  add_test(NAME tls_${case} COMMAND test_tls ${case} ${LEVR_TLS_CERTS})
  set_tests_properties(tls_${case} PROPERTIES
    FIXTURES_REQUIRED tls_certs TIMEOUT 120)
endforeach()

add_test(NAME tls_redis COMMAND test_tls redis ${LEVR_TLS_CERTS}
                                ${LEVR_TLS_REDIS})
set_tests_properties(tls_redis PROPERTIES
  FIXTURES_REQUIRED "tls_certs;tls_redis" TIMEOUT 60)
add_test(NAME tls_redis_mtls COMMAND test_tls redis_mtls ${LEVR_TLS_CERTS}
                                     ${LEVR_TLS_REDIS_MTLS})
set_tests_properties(tls_redis_mtls PROPERTIES
  FIXTURES_REQUIRED "tls_certs;tls_redis_mtls" TIMEOUT 60)
