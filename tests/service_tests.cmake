# Service-layer tests without LibTorch; included from tests/CMakeLists.txt
# (not in the core-only build). They link the service sources with the fake
# backend (service/fake_torch_backend.cc) instead of the LibTorch one, so they
# also run under ThreadSanitizer (scripts/test.sh): Debian's LibTorch and its
# OpenMP runtime are not instrumented.

# The service sources, compiled again without microbatch_torch_backend.
get_target_property(_service_sources microbatch_service SOURCES)
list(TRANSFORM _service_sources PREPEND ${PROJECT_SOURCE_DIR}/server/)
add_library(microbatch_service_fake_backend STATIC
  ${_service_sources} service/fake_torch_backend.cc)
target_include_directories(microbatch_service_fake_backend PUBLIC ${PROJECT_SOURCE_DIR})
target_include_directories(microbatch_service_fake_backend PRIVATE ${RAPIDJSON_INCLUDE_DIR})
target_compile_definitions(microbatch_service_fake_backend PRIVATE MICROBATCH_VERSION="${PROJECT_VERSION}")
target_link_libraries(microbatch_service_fake_backend PUBLIC
  microbatch_core microbatch_lifecycle microbatch_proto microbatch_metrics microbatch_http
  gRPC::grpc++ gRPC::grpc++_reflection absl::flags absl::strings absl::time)

add_executable(service_test
  service/batch_framing_test.cc
  service/service_concurrency_test.cc
  service/shadow_latency_test.cc
  service/model_control_test.cc
)
target_include_directories(service_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(service_test PRIVATE microbatch_service_fake_backend GTest::gmock_main)
gtest_discover_tests(service_test PROPERTIES LABELS service TIMEOUT 300 DISCOVERY_TIMEOUT 60)
