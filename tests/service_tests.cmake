# Service-layer tests without LibTorch; included from tests/CMakeLists.txt
# (not in the core-only build). They link the service sources with the fake
# backend (service/fake_torch_backend.cc) instead of the LibTorch one, so they
# also run under ThreadSanitizer (scripts/test.sh): Debian's LibTorch and its
# OpenMP runtime are not instrumented.

# The service library (compiled once, server/CMakeLists.txt) with the fake
# backend in place of the LibTorch one.
add_library(microbatch_fake_backend STATIC service/fake_torch_backend.cc)
target_include_directories(microbatch_fake_backend PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(microbatch_fake_backend PUBLIC microbatch_core absl::status absl::statusor)
add_library(microbatch_service_fake_backend INTERFACE)
target_link_libraries(microbatch_service_fake_backend INTERFACE microbatch_service_base microbatch_fake_backend)

add_executable(service_test
  service/batch_framing_test.cc
  service/drain_gate_test.cc
  service/service_concurrency_test.cc
  service/shadow_latency_test.cc
  service/model_control_test.cc
)
target_include_directories(service_test PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(service_test PRIVATE microbatch_service_fake_backend GTest::gmock_main)
gtest_discover_tests(service_test PROPERTIES LABELS service TIMEOUT 300 DISCOVERY_TIMEOUT 60)
