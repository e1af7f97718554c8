// JSON <-> tensor conversions for the CLI.
#ifndef MICROBATCH_CLIENT_TENSOR_JSON_H_
#define MICROBATCH_CLIENT_TENSOR_JSON_H_

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "microbatch/v1/tensor.pb.h"
#include "common/tensor/tensor.h"

namespace microbatch {

// Parses a (nested, rectangular) JSON array of numbers or booleans into a
// tensor of `dtype`. `model_shape` is the model's declared shape with the
// batch dimension first (-1 for variable); when the JSON has one dimension
// fewer, it is taken as a single row. Errors name the input.
absl::StatusOr<v1::Tensor> TensorFromJson(const std::string& name, const nlohmann::json& value,
                                          DType dtype, const std::vector<int64_t>& model_shape);

// {"dtype": "FP32", "shape": [...], "data": nested arrays}
nlohmann::json TensorToJson(const v1::Tensor& tensor);
// A BYTES tensor the same way: {"dtype": "BYTES", "shape": [...], "data":
// strings nested by the shape}. `elements` holds as many as the shape.
nlohmann::json StringsToJson(const std::vector<int64_t>& shape, const std::vector<std::string>& elements);

// Element `index` of `data` (of `dtype`) as a double.
double ElementAsDouble(DType dtype, const char* data, size_t index);
// Whether `value` converts to `dtype` without overflow: for the integer
// dtypes, not NaN and in the type's range after truncation toward zero;
// always true for the floating-point dtypes and BOOL.
bool FitsDType(DType dtype, double value);
// Writes `value` as element `index` of `data`, converted to `dtype`. A value
// that does not fit an integer dtype (FitsDType) is saturated to the type's
// range (NaN to 0) rather than converted with undefined behavior; callers
// reading user input check FitsDType first and report the value.
void StoreElement(DType dtype, double value, char* data, size_t index);

}  // namespace microbatch

#endif  // MICROBATCH_CLIENT_TENSOR_JSON_H_
