// anvil quantize IN OUT TYPE [--threads N] [--pure]
//
// Copies IN's metadata (general.file_type and general.quantization_version updated) and writes
// every tensor in the type quant::choose_type gives it under TYPE (the Q4_K_M etc. mixes). Each
// tensor is produced at write time through Writer::add_tensor_lazy from the memory-mapped input,
// in row chunks on a thread pool, so memory stays bounded by the largest output tensor.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "anvil/commands.h"
#include "common/cli.h"
#include "common/progress.h"
#include "core/dtype.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "gguf/file.h"
#include "gguf/writer.h"
#include "quant/q4_k_m.h"
#include "quant/quant.h"

namespace anvil::tools {
namespace {

constexpr uint32_t kQuantizationVersion = 2;  // ggml's GGML_QNT_VERSION

struct QuantizeOptions {
  std::string in, out, type;
  int threads = 0;
  bool pure = false;
  bool quiet = false;
};

const std::vector<std::string>& file_type_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (auto ft : {quant::FileType::F32, quant::FileType::F16, quant::FileType::BF16, quant::FileType::Q8_0,
                    quant::FileType::Q4_0, quant::FileType::Q4_1, quant::FileType::Q5_0, quant::FileType::Q5_1,
                    quant::FileType::Q4_K_M, quant::FileType::Q4_K_S, quant::FileType::Q5_K_M, quant::FileType::Q6_K})
      v.emplace_back(quant::file_type_name(ft));
    return v;
  }();
  return names;
}

// The single type --pure gives every quantizable tensor.
DType base_type(quant::FileType ft) {
  switch (ft) {
    case quant::FileType::F32: return DType::F32;
    case quant::FileType::F16: return DType::F16;
    case quant::FileType::BF16: return DType::BF16;
    case quant::FileType::Q4_0: return DType::Q4_0;
    case quant::FileType::Q4_1: return DType::Q4_1;
    case quant::FileType::Q5_0: return DType::Q5_0;
    case quant::FileType::Q5_1: return DType::Q5_1;
    case quant::FileType::Q8_0: return DType::Q8_0;
    case quant::FileType::Q4_K_M:
    case quant::FileType::Q4_K_S: return DType::Q4_K;
    case quant::FileType::Q5_K_M: return DType::Q5_K;
    case quant::FileType::Q6_K: return DType::Q6_K;
  }
  return DType::F32;
}

int block_count(const gguf::File& f, const std::string& arch) {
  if (auto n = f.get_u32(arch + ".block_count")) return int(*n);
  // no key: count the blk.N prefixes
  int n = 0;
  static const std::regex blk(R"(^blk\.(\d+)\.)");
  for (const auto& t : f.tensors()) {
    std::smatch m;
    if (std::regex_search(t.name, m, blk)) n = std::max(n, std::stoi(m[1].str()) + 1);
  }
  return n;
}

struct TensorJob {
  const gguf::TensorInfo* src;
  DType dst_type;
  uint64_t dst_size;
};

// Converts one tensor row chunk by row chunk: dequantize (or widen) to f32, quantize into dst.
Status convert_tensor(const gguf::File& f, const TensorJob& job, uint8_t* dst, uint64_t size, ThreadPool& pool,
                      ProgressBar& progress) {
  const gguf::TensorInfo& t = *job.src;
  if (size != job.dst_size) return make_error(StatusCode::internal, "tensor '", t.name, "': size mismatch");
  const uint8_t* src = f.tensor_data(t);
  if (job.dst_type == t.type) {  // nothing to convert: copy in pieces so the progress moves
    constexpr uint64_t kPiece = 64u << 20;
    for (uint64_t off = 0; off < size; off += kPiece) {
      const uint64_t n = std::min(kPiece, size - off);
      std::memcpy(dst + off, src + off, n);
      progress.add_bytes(n);
    }
    return Status::ok();
  }
  const int64_t ne0 = int64_t(t.dims.empty() ? 1 : t.dims[0]);
  const int64_t n_rows = int64_t(t.n_rows());
  const uint64_t src_row = t.row_size();
  const uint64_t dst_row = size / uint64_t(std::max<int64_t>(n_rows, 1));
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(ne0, 1));
  std::mutex err_mu;
  Status first_error;
  pool.parallel_for(n_rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(ne0));
    for (int64_t r = begin; r < end; ++r) {
      Status s = quant::dequantize_row(t.type, src + uint64_t(r) * src_row, row.data(), ne0);
      if (s.is_ok()) s = quant::quantize_row(job.dst_type, row.data(), dst + uint64_t(r) * dst_row, ne0);
      if (!s.is_ok()) {
        std::lock_guard lock(err_mu);
        if (first_error.is_ok()) first_error = s;
        return;
      }
    }
    progress.add_bytes(uint64_t(end - begin) * src_row);
  });
  if (!first_error.is_ok()) return make_error(first_error.code(), "tensor '", t.name, "': ", first_error.message());
  return Status::ok();
}

int run_quantize(const QuantizeOptions& o) {
  quant::FileType ft;
  if (!quant::file_type_from_name(o.type, ft))
    fail_usage(fmt::format("unknown quantization type '{}'; choose one of: {}", o.type, join(file_type_names(), " ")));
  {
    std::error_code ec;
    if (std::filesystem::exists(o.out, ec) && std::filesystem::equivalent(o.in, o.out, ec))
      fail_usage("OUT must not be the input file");
  }
  const gguf::File in = open_gguf_or_fail(o.in);
  const std::string arch = in.architecture().has_value() ? in.architecture().value() : std::string();
  if (arch.empty()) log().warn("'{}' has no general.architecture; using the generic type rules", o.in);

  std::vector<quant::TensorDesc> descs;
  for (const auto& t : in.tensors()) descs.push_back({t.name, t.dims, t.type});
  const quant::MixContext ctx = quant::make_mix_context(arch, block_count(in, arch), descs);

  // Decide every tensor's type up front so a problem shows before anything is written.
  std::vector<TensorJob> jobs;
  uint64_t total_src = 0;
  size_t n_requant = 0;
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    const gguf::TensorInfo& t = in.tensors()[i];
    DType dst = quant::choose_type(ft, ctx, descs[i]);
    if (o.pure && traits(dst).quantized) {
      const DType b = base_type(ft);
      if (row_bytes(b, t.dims.empty() ? 1 : t.dims[0])) dst = b;
    }
    if (dst != t.type) {
      if (!quant::has_reference(t.type))
        fail(fmt::format("tensor '{}' has type {}, which anvil cannot dequantize; the input should be F32, F16 or BF16",
                         t.name, dtype_name(t.type)));
      if (!quant::has_reference(dst))
        fail(fmt::format("tensor '{}': no quantizer for {}", t.name, dtype_name(dst)));
      if (traits(t.type).quantized) ++n_requant;
    }
    const auto row = row_bytes(dst, t.dims.empty() ? 1 : t.dims[0]);
    if (!row)
      fail(fmt::format("tensor '{}': row of {} elements is not a whole number of {} blocks", t.name,
                       t.dims.empty() ? 1 : t.dims[0], dtype_name(dst)));
    jobs.push_back({&t, dst, *row * t.n_rows()});
    total_src += t.size;
  }
  if (n_requant)
    log().warn("{} tensors are already quantized; requantizing them loses accuracy (start from F16/BF16/F32)",
               n_requant);

  gguf::Writer w(in.alignment());
  for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
  w.set("general.file_type", uint32_t(quant::file_type_gguf_id(ft)));
  w.set("general.quantization_version", kQuantizationVersion);

  const int n_threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(n_threads);
  ProgressBar progress("quantize", jobs.size(), total_src, !o.quiet);
  for (size_t i = 0; i < jobs.size(); ++i) {
    const TensorJob& job = jobs[i];
    const gguf::TensorInfo& t = *job.src;
    check(w.add_tensor_lazy(t.name, job.dst_type, t.dims,
                            [&, i](uint8_t* dst, uint64_t size) {
                              progress.begin_item(i, t.name);
                              return convert_tensor(in, jobs[i], dst, size, pool, progress);
                            }),
          "adding tensor '" + t.name + "'");
  }
  check(w.write(o.out), "writing '" + o.out + "'");
  progress.finish();

  std::map<std::string, size_t> counts;
  for (const auto& j : jobs) counts[std::string(dtype_name(j.dst_type))]++;
  std::vector<std::string> parts;
  for (const auto& [name, n] : counts) parts.push_back(fmt::format("{} {}", name, n));
  std::error_code ec;
  const uint64_t out_size = std::filesystem::file_size(o.out, ec);
  fmt::print("quantized {} -> {} as {} in {}\n", o.in, o.out, quant::file_type_name(ft),
             human_duration(progress.elapsed_seconds()));
  fmt::print("  size: {} -> {} ({:.1f}%)\n", human_bytes(double(in.file_size())), human_bytes(double(out_size)),
             in.file_size() ? 100.0 * double(out_size) / double(in.file_size()) : 0.0);
  fmt::print("  tensors: {} ({})\n", jobs.size(), join(parts, ", "));
  return kExitOk;
}

}  // namespace

CommandAction setup_quantize(CLI::App& cmd) {
  auto o = std::make_shared<QuantizeOptions>();
  cmd.footer(
      "Convert a GGUF model (F32, F16 or BF16 weights) to TYPE. Metadata is copied (general.file_type and "
      "general.quantization_version updated); each tensor gets the type llama.cpp's quantizer would give it "
      "under TYPE (e.g. Q4_K_M: Q4_K, with Q6_K for the output head and some attn_v/ffn_down layers; norms stay F32).");
  cmd.add_option("IN", o->in, "Input GGUF (F32/F16/BF16)")->required();
  cmd.add_option("OUT", o->out, "Output GGUF (written to OUT.tmp, then renamed)")->required();
  cmd.add_option("TYPE", o->type, "Target type: " + join(file_type_names(), ", "))->required();
  cmd.add_option("--threads", o->threads, "Worker threads (0: all cores)")->capture_default_str();
  cmd.add_flag("--pure", o->pure,
               "No type mix: every quantizable tensor gets TYPE's base type (Q4_K for Q4_K_M); norms etc. stay F32");
  cmd.add_flag("-q,--quiet", o->quiet, "No progress display");
  return [o] { return run_quantize(*o); };
}

}  // namespace anvil::tools
