#include "server/service/warm_up_samples.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/tensor/tensor.h"
#include "server/service/convert.h"

namespace microbatch {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxWarmUpCount = 10000;

// A file name inside the model's warmup/ directory: relative, without "..".
bool StaysInWarmUpDirectory(const std::string& file) {
  if (file.empty()) return false;
  const fs::path path(file);
  if (path.is_absolute() || path.has_root_name() || path.has_root_directory()) return false;
  for (const fs::path& part : path) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

absl::Status CheckWarmUpSamples(v1::ModelConfig* config, const std::string& source) {
  for (int i = 0; i < config->warmup_size(); ++i) {
    v1::WarmUpSample* sample = config->mutable_warmup(i);
    if (sample->name().empty()) sample->set_name(absl::StrCat("sample_", i));
    auto error = [&](auto&&... parts) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": warm-up sample '", sample->name().substr(0, 64), "': ", parts...));
    };
    if (sample->batch_size() == 0) sample->set_batch_size(1);
    if (sample->batch_size() < 1 || sample->batch_size() > config->max_batch_size()) {
      return error("batch_size ", sample->batch_size(), " is outside [1, ",
                   config->no_batch_dimension() ? "1 (the model has no batch dimension)"
                                                : absl::StrCat("max_batch_size=", config->max_batch_size()),
                   "]");
    }
    if (sample->count() == 0) sample->set_count(1);
    if (sample->count() < 1 || sample->count() > kMaxWarmUpCount) {
      return error("count ", sample->count(), " is outside [1, ", kMaxWarmUpCount, "]");
    }
    for (const auto& [name, unused] : sample->inputs()) {
      bool known = false;
      for (const v1::TensorConfig& t : config->input()) known = known || t.name() == name;
      if (!known) return error("input '", name.substr(0, 64), "' is not an input of the model");
    }
    for (const v1::TensorConfig& t : config->input()) {
      auto it = sample->mutable_inputs()->find(t.name());
      if (it == sample->mutable_inputs()->end()) {
        if (t.optional()) continue;  // left out, as a request may
        return error("gives no data for input '", t.name(), "'");
      }
      v1::WarmUpInput& in = it->second;
      const absl::Span<const int64_t> declared(t.dims().data(), t.dims().size());
      if (in.dims().empty() && !t.dims().empty()) {
        for (int64_t d : t.dims()) {
          if (d < 0) {
            return error("input '", t.name(), "' has variable dims ", ShapeToString(declared),
                         "; give the sample's dims");
          }
        }
        in.mutable_dims()->CopyFrom(t.dims());
      }
      const std::vector<int64_t> dims(in.dims().begin(), in.dims().end());
      bool fits = dims.size() == static_cast<size_t>(t.dims_size());
      for (size_t d = 0; fits && d < dims.size(); ++d) {
        fits = dims[d] >= 0 && (t.dims(static_cast<int>(d)) < 0 || t.dims(static_cast<int>(d)) == dims[d]);
      }
      if (!fits) {
        return error("input '", t.name(), "': dims ", ShapeToString(dims), " do not fit the input's ",
                     ShapeToString(declared));
      }
      std::vector<int64_t> batch = dims;
      batch.insert(batch.begin(), sample->batch_size());
      const std::optional<int64_t> elements = ElementCount(batch);
      const int64_t element_bytes = static_cast<int64_t>(DTypeSize(FromProtoDType(t.dtype())));
      if (!elements || *elements > kMaxWarmUpInputBytes / std::max<int64_t>(1, element_bytes)) {
        return error("input '", t.name(), "': a batch of ", ShapeToString(batch), " is over ",
                     kMaxWarmUpInputBytes >> 20, " MiB");
      }
      if (in.data_case() == v1::WarmUpInput::kInputDataFile && !StaysInWarmUpDirectory(in.input_data_file())) {
        return error("input '", t.name(), "': input_data_file '", in.input_data_file().substr(0, 128),
                     "' must name a file inside the model's warmup/ directory");
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WarmUpSample>> ReadWarmUpSamples(const v1::ModelConfig& config,
                                                            const ModelSignature& signature,
                                                            const std::string& model_dir) {
  std::vector<WarmUpSample> samples;
  for (const v1::WarmUpSample& given : config.warmup()) {
    WarmUpSample& sample = samples.emplace_back();
    sample.name = given.name();
    sample.rows = given.batch_size();
    sample.count = given.count();
    for (const TensorSpec& spec : signature.inputs) {
      WarmUpSample::Input& out = sample.inputs.emplace_back();
      const auto it = given.inputs().find(spec.name);
      if (it == given.inputs().end()) {  // an optional input (CheckWarmUpSamples)
        out.fill = WarmUpSample::Fill::kAbsent;
        continue;
      }
      const v1::WarmUpInput& in = it->second;
      out.dims.assign(in.dims().begin(), in.dims().end());
      switch (in.data_case()) {
        case v1::WarmUpInput::kRandomData: out.fill = WarmUpSample::Fill::kRandom; break;
        case v1::WarmUpInput::kInputDataFile: {
          out.fill = WarmUpSample::Fill::kData;
          const fs::path path = fs::path(model_dir) / "warmup" / in.input_data_file();
          const std::string what = absl::StrCat("warm-up sample '", sample.name, "': input '", spec.name,
                                                "': ", path.string());
          const size_t row_bytes = static_cast<size_t>(*ElementCount(out.dims)) * DTypeSize(spec.dtype);
          std::error_code ec;
          const uintmax_t size = fs::file_size(path, ec);
          std::ifstream file(path, std::ios::binary);
          if (ec || !file) return absl::NotFoundError(absl::StrCat(what, ": cannot read the file"));
          if (size != row_bytes) {
            return absl::InvalidArgumentError(absl::StrCat(what, " has ", size, " bytes; one row of ",
                                                           ShapeToString(out.dims), " ", DTypeName(spec.dtype),
                                                           " is ", row_bytes));
          }
          out.data.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
          if (out.data.size() != row_bytes) {
            return absl::InvalidArgumentError(absl::StrCat(what, ": read ", out.data.size(), " of ", row_bytes,
                                                           " bytes"));
          }
          break;
        }
        case v1::WarmUpInput::kZeroData:
        case v1::WarmUpInput::DATA_NOT_SET: out.fill = WarmUpSample::Fill::kZero; break;
      }
    }
  }
  return samples;
}

}  // namespace microbatch
