# Tests that run real TorchScript models behind real gRPC channels.
add_executable(server_test
  server/server_test.cc
  server/model_repository_test.cc
  server/sigterm_test.cc
  server/ops_test.cc
  server/batch_predict_test.cc
  server/scale_out_test.cc
  server/metrics_families_test.cc
  server/hostile_input_test.cc
  server/tls_test.cc
  server/server_flags_test.cc
  server/memory_bound_test.cc
  server/chaos_test.cc
  server/response_cache_e2e_test.cc
  server/lifecycle_test.cc
  server/version_label_test.cc
  server/triton_config_test.cc
)
target_include_directories(server_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(server_test PRIVATE
  microbatch_service microbatch_demo_models microbatch_proto microbatch_client_lib GTest::gmock_main)
target_compile_definitions(server_test PRIVATE
  MICROBATCH_SERVER_BIN="$<TARGET_FILE:microbatch-server>"
  MICROBATCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  MICROBATCH_VERSION="${PROJECT_VERSION}"
  MICROBATCH_CLI_BIN="$<TARGET_FILE:microbatch>")
add_dependencies(server_test microbatch-server microbatch)
gtest_discover_tests(server_test PROPERTIES LABELS server TIMEOUT 300 DISCOVERY_TIMEOUT 60)

# The microbatch CLI without a server: files, the command line (in process
# and the real binary), TLS channels (with an in-process gRPC server), the
# /metrics scraper (with a loopback HTTP server), the Open Inference Protocol
# codecs, and v1/v2/REST against stand-in front ends (fake_front_ends.h).
add_executable(client_test
  client/batch_io_test.cc
  client/bench_report_test.cc
  client/channel_test.cc
  client/cli_binary_test.cc
  client/cli_test.cc
  client/front_ends_test.cc
  client/metrics_scraper_test.cc
  client/npy_test.cc
  client/open_inference_test.cc
  client/tensor_json_test.cc
)
target_include_directories(client_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(client_test PRIVATE microbatch_client_lib GTest::gmock_main)
target_compile_definitions(client_test PRIVATE MICROBATCH_CLI_BIN="$<TARGET_FILE:microbatch>"
  MICROBATCH_VERSION="${PROJECT_VERSION}")
add_dependencies(client_test microbatch)
gtest_discover_tests(client_test PROPERTIES LABELS client DISCOVERY_TIMEOUT 60)

# The KServe v2 / Open Inference Protocol front ends (gRPC and REST) against
# a real server on loopback.
find_package(CURL REQUIRED)
add_executable(v2_test v2/v2_grpc_test.cc v2/v2_rest_test.cc v2/model_formats_test.cc)
target_include_directories(v2_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(v2_test PRIVATE
  microbatch_service microbatch_demo_models microbatch_proto CURL::libcurl nlohmann_json::nlohmann_json
  GTest::gmock_main)
gtest_discover_tests(v2_test PROPERTIES LABELS "server;v2" TIMEOUT 300 DISCOVERY_TIMEOUT 60)

# The microbatch CLI against a real server on loopback (tests/v2/v2_server.h):
# predict through v1, v2 and REST with every datatype, bench over the three,
# and models / model load|unload|label|split|shadow in explicit and poll mode.
add_executable(client_e2e_test client/client_e2e_test.cc client/model_cli_e2e_test.cc)
target_include_directories(client_e2e_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(client_e2e_test PRIVATE
  microbatch_service microbatch_demo_models microbatch_client_lib GTest::gmock_main)
target_compile_definitions(client_e2e_test PRIVATE MICROBATCH_CLI_BIN="$<TARGET_FILE:microbatch>")
add_dependencies(client_e2e_test microbatch)
gtest_discover_tests(client_e2e_test PROPERTIES LABELS "client;server;v2" TIMEOUT 300 DISCOVERY_TIMEOUT 60)
