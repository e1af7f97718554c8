// Conversions between float and the 16-bit float formats (IEEE 754 half,
// bfloat16), shared by the server's JSON front end and the client.
#ifndef MICROBATCH_COMMON_TENSOR_FLOAT16_H_
#define MICROBATCH_COMMON_TENSOR_FLOAT16_H_

#include <cstdint>

namespace microbatch {

// Exact: every half is a float.
float HalfToFloat(uint16_t half);
// Rounds to nearest, ties to even; overflow gives infinity, NaN stays NaN.
uint16_t FloatToHalf(float value);
// Exact.
float BFloat16ToFloat(uint16_t bf16);
// Rounds to nearest, ties to even; NaN stays NaN.
uint16_t FloatToBFloat16(float value);

}  // namespace microbatch

#endif  // MICROBATCH_COMMON_TENSOR_FLOAT16_H_
