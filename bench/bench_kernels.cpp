// bench-kernels: every candidate of every op, side by side, against the roofline measured in
// the same run. Markdown on stdout, JSON with --json.
//
// --backend cpu (the default): CPU dequantize throughput per block type, and the CPU matmul
// candidates at Qwen3-4B's layer shapes.
// --backend cuda (builds with ANVIL_CUDA): every CUDA candidate of matmul, attention, DeltaNet,
// conv, norm and RoPE at the Qwen3-4B / Qwen3.5-4B / Qwen2.5-7B shapes, against the copy and
// GEMM ceilings measured in the same run (bench/bench_kernels_cuda.cu). Without a usable GPU it
// says why on one line and exits 1.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_kernels_cuda.h"
#include "bench/report.h"
#include "bench/timing.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "cpu/matmul_candidates.h"
#include "quant/quant.h"

namespace {

using namespace anvil;

const std::vector<DType> kDequantTypes = {DType::F32,  DType::F16,  DType::BF16, DType::Q4_0,
                                          DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                                          DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K};

std::string machine_description(int threads) {
  std::string cpu = "unknown CPU";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  return cpu + ", " + std::to_string(threads) + " threads";
}

void bench_dequantize(bench::Report& report, int64_t rows, int64_t cols, int threads,
                      const std::vector<DType>& types) {
  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> src(size_t(rows * cols));
  for (auto& v : src) v = nd(rng);
  std::vector<float> out(src.size());

  for (DType t : types) {
    const uint64_t rb = *row_bytes(t, uint64_t(cols));
    std::vector<uint8_t> q(rb * uint64_t(rows));
    throw_if_error(quant::quantize_rows(t, src.data(), q.data(), cols, rows, threads));
    const double bytes = double(q.size()) + double(out.size()) * sizeof(float);
    const std::string shape = std::string(dtype_name(t)) + " " + std::to_string(rows) + "x" + std::to_string(cols);

    auto add = [&](const char* cand, int n_threads) {
      auto tm = bench::time_it([&] {
        throw_if_error(quant::dequantize_rows(t, q.data(), out.data(), cols, rows, n_threads));
      });
      bench::Row r;
      r.op = "dequantize";
      r.shape = shape;
      r.candidate = cand;
      r.backend = "cpu";
      r.time_us = tm.median_s * 1e6;
      r.gbps = bytes / tm.median_s / 1e9;
      r.roofline_fraction = r.gbps / report.copy_bandwidth_gbps;
      report.rows.push_back(r);
      std::fprintf(stderr, "  %-28s %-22s %10.1f us\n", shape.c_str(), cand, r.time_us);
    };
    add("reference_1thread", 1);
    if (threads > 1) add("reference_threads", threads);
  }
}

// Qwen3-4B's projections (out x in): q (and o's transpose), gate/up, down.
struct MatmulShape {
  const char* name;
  int64_t out, in;
};
const MatmulShape kQwen3_4BShapes[] = {{"q", 4096, 2560}, {"gate/up", 9728, 2560}, {"down", 2560, 9728}};

// Every matmul candidate that supports the shape. "GB/s" is weight bytes streamed per second;
// for n = 1 (a GEMV, bandwidth-bound) the fraction column is that over the copy bandwidth.
// Decode-sized runs rotate over enough copies of W (>= 96 MB) that each run reads it from DRAM,
// as a forward pass does.
void bench_matmul(bench::Report& report, int threads, const std::vector<DType>& types,
                  const std::vector<int64_t>& token_counts, int64_t reference_max_n) {
  ThreadPool pool(threads);
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (DType t : types) {
    for (const auto& shape : kQwen3_4BShapes) {
      std::vector<float> f(size_t(shape.out * shape.in));
      for (auto& v : f) v = nd(rng);
      const uint64_t rb = *row_bytes(t, uint64_t(shape.in));
      const size_t wbytes = rb * uint64_t(shape.out);
      const int copies = int(std::max<size_t>(1, ((size_t(96) << 20) + wbytes - 1) / wbytes));
      std::vector<std::vector<uint8_t>> w(static_cast<size_t>(copies), std::vector<uint8_t>(wbytes));
      throw_if_error(quant::quantize_rows(t, f.data(), w[0].data(), shape.in, shape.out, threads));
      for (int c = 1; c < copies; ++c) w[size_t(c)] = w[0];
      for (int64_t n : token_counts) {
        std::vector<float> x(size_t(n * shape.in)), y(size_t(n * shape.out));
        for (auto& v : x) v = nd(rng);
        const Tensor xt = Tensor::contiguous(x.data(), DType::F32, n, shape.in);
        const std::string label = std::string(dtype_name(t)) + " " + std::to_string(shape.out) + "x" +
                                  std::to_string(shape.in) + " (" + shape.name + ") n=" + std::to_string(n);
        const int rotate = n <= 8 ? copies : 1;
        for (const auto& cand : cpu::matmul_registry().candidates()) {
          std::vector<Tensor> wt;
          for (int c = 0; c < rotate; ++c)
            wt.push_back(Tensor::contiguous(w[size_t(c)].data(), t, shape.out, shape.in));
          const cpu::MatmulArgs probe{&wt[0], &xt, Tensor::contiguous(y.data(), DType::F32, n, shape.out), &pool};
          if (!cand.supports(probe)) continue;
          if (cand.name == "reference" && n > reference_max_n) continue;  // seconds per run
          int i = 0;
          auto tm = bench::time_it(
              [&] {
                const cpu::MatmulArgs a{&wt[size_t(i++ % rotate)], &xt,
                                        Tensor::contiguous(y.data(), DType::F32, n, shape.out), &pool};
                throw_if_error(cand.run(a));
              },
              1, 3, 0.1, 200);
          bench::Row r;
          r.op = "matmul";
          r.shape = label;
          r.candidate = cand.name;
          r.backend = "cpu";
          r.time_us = tm.median_s * 1e6;
          r.gbps = double(wbytes) / tm.median_s / 1e9;
          r.tflops = 2.0 * double(n) * double(shape.out) * double(shape.in) / tm.median_s / 1e12;
          r.roofline_fraction = n == 1 ? r.gbps / report.copy_bandwidth_gbps : 0;
          report.rows.push_back(r);
          std::fprintf(stderr, "  %-40s %-12s %10.1f us %7.1f GFLOP/s %6.1f GB/s\n", label.c_str(), cand.name.c_str(),
                       r.time_us, r.tflops * 1e3, r.gbps);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench-kernels: time every kernel candidate per op and shape against the measured roofline"};
  std::string backend = "cpu", json_path, md_path;
  std::vector<std::string> ops;
  std::vector<std::string> type_names;
  int64_t rows = 4096, cols = 4096;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--backend", backend, "Backend to benchmark: cpu, or cuda (builds with CUDA, on a GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  std::vector<int64_t> matmul_tokens = {1, 8, 32, 512};
  int64_t reference_max_n = 8;
  std::vector<std::string> op_names = {"dequantize", "matmul"};
  for (const auto& op : bench::cuda_bench_ops())
    if (std::find(op_names.begin(), op_names.end(), op) == op_names.end()) op_names.push_back(op);
  app.add_option("--op", ops, "Ops to run (cpu: dequantize [default], matmul; cuda: " +
                                  std::string("matmul, attention, deltanet, conv1d_silu, rms_norm, rope, sample [default: all])"))
      ->check(CLI::IsMember(op_names));
  app.add_option("--tokens", matmul_tokens, "matmul: token counts n (cuda default: 1 8 32 64 512)")
      ->check(CLI::PositiveNumber);
  app.add_option("--reference-max-n", reference_max_n, "matmul: time the reference candidate up to this n");
  app.add_option("--types", type_names, "Block types (default: all with a reference)");
  app.add_option("--rows", rows, "Rows of the test matrix")->check(CLI::PositiveNumber);
  app.add_option("--cols", cols, "Columns (a multiple of 256)")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "CPU threads")->check(CLI::PositiveNumber);
  bench::CudaBenchOptions cuda_opt;
  app.add_option("--models", cuda_opt.models, "cuda: models whose shapes to run (default: all)")
      ->check(CLI::IsMember(bench::cuda_bench_models()));
  app.add_option("--filter", cuda_opt.filter, "cuda: only rows whose 'op shape' contains this text");
  app.add_flag("--quick", cuda_opt.quick, "cuda: fewer shapes and sizes (a smoke run)");
  app.add_option("--device", cuda_opt.device, "cuda: device index")->check(CLI::NonNegativeNumber);
  app.add_option("--samples", cuda_opt.samples, "cuda: timed samples per row (median reported)")
      ->check(CLI::Range(3, 1000));
  app.add_option("--json", json_path, "Also write the results as JSON to this file");
  app.add_option("--markdown", md_path, "Also write the markdown table to this file");
  CLI11_PARSE(app, argc, argv);

  bench::Report report;
  report.title = "bench-kernels (" + backend + ")";
  if (backend == "cuda") {
#ifdef ANVIL_BENCH_CUDA
    for (const auto& op : ops)
      if (op == "dequantize") {
        std::fprintf(stderr, "bench-kernels: --op dequantize has no CUDA benchmark\n");
        return 2;
      }
    cuda_opt.ops = ops;
    if (app.count("--tokens") > 0) cuda_opt.tokens = matmul_tokens;
    if (const int rc = bench::run_cuda_benchmarks(report, cuda_opt); rc != 0) return rc;
#else
    std::fprintf(stderr, "bench-kernels: --backend cuda: this build has no CUDA backend (configure with -DANVIL_CUDA=ON)\n");
    return 1;
#endif
  } else {
    if (ops.empty()) ops = {"dequantize"};
    for (const auto& op : ops)
      if (op != "dequantize" && op != "matmul") {
        std::fprintf(stderr, "bench-kernels: --op %s has no CPU benchmark (try --backend cuda)\n", op.c_str());
        return 2;
      }
    if (cols % 256 != 0) {
      std::fprintf(stderr, "bench-kernels: --cols must be a multiple of 256 (got %lld)\n", (long long)cols);
      return 2;
    }
    std::vector<DType> types, matmul_types = {DType::Q4_K, DType::Q6_K, DType::Q8_0};
    if (type_names.empty()) types = kDequantTypes;
    for (const auto& n : type_names) {
      auto t = dtype_from_name(n);
      if (!t || !quant::has_reference(*t)) {
        std::fprintf(stderr, "bench-kernels: unknown or unsupported type '%s'\n", n.c_str());
        return 2;
      }
      types.push_back(*t);
    }
    if (!type_names.empty()) matmul_types = types;

    report.machine = machine_description(threads);
    std::fprintf(stderr, "measuring copy bandwidth...\n");
    // The ceiling is measured on a buffer as large as the kernels' f32 output, so both run from
    // the same level of the memory hierarchy (DRAM at the default 4096 x 4096).
    report.copy_bandwidth_gbps = bench::measure_copy_bandwidth(size_t(rows * cols) * sizeof(float)) / 1e9;
    for (const auto& op : ops)
      if (op == "dequantize") bench_dequantize(report, rows, cols, threads, types);
      else if (op == "matmul") bench_matmul(report, threads, matmul_types, matmul_tokens, reference_max_n);
  }
  report.mark_winners();

  const std::string md = report.markdown();
  std::fputs(md.c_str(), stdout);
  if (!md_path.empty()) std::ofstream(md_path) << md;
  if (!json_path.empty()) std::ofstream(json_path) << report.json() << "\n";
  return 0;
}
