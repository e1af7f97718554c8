# Metrics layer and HTTP server tests; included from tests/CMakeLists.txt.
# Both also run under ThreadSanitizer (no torch or gRPC).
add_executable(metrics_test
  metrics/exposition_test.cc
  metrics/promtool_test.cc
)
target_link_libraries(metrics_test PRIVATE microbatch_metrics GTest::gmock_main)
gtest_discover_tests(metrics_test PROPERTIES LABELS metrics DISCOVERY_TIMEOUT 60)

add_executable(http_server_test http/http_server_test.cc)
target_link_libraries(http_server_test PRIVATE microbatch_http ZLIB::ZLIB GTest::gmock_main)
gtest_discover_tests(http_server_test PROPERTIES LABELS http DISCOVERY_TIMEOUT 60)
