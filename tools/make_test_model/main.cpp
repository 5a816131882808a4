// make-test-model: writes a synthetic GGUF (random weights, real tensor names, shapes and
// metadata keys) for llama, qwen2, qwen3, qwen35 or gemma3, from a preset and/or explicit dims.
// Tensors are generated and quantized at write time (Writer::add_tensor_lazy) in row chunks on
// a thread pool, so even the 7B preset needs only about one output tensor of memory.
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/cli.h"
#include "common/progress.h"
#include "core/log.h"
#include "core/thread_pool.h"
#include "make_test_model/model_spec.h"
#include "quant/q4_k_m.h"
#include "quant/quant.h"

namespace anvil::tools::mtm {
namespace {

constexpr uint32_t kQuantizationVersion = 2;
constexpr int64_t kMinSyntheticVocab = 265;  // 256 bytes + 6 merges + 3 specials

struct Options {
  std::string preset, arch, out, type = "F16", name;
  uint64_t seed = 1234;
  float std = 0.02f;
  int threads = 0;
  std::string vocab_file, vocab_dir;
  int64_t synthetic_vocab = 0;
  bool dry_run = false, quiet = false, list_presets = false, tied = false, untied = false;
  // overrides; applied only when given on the command line
  int layers = 0, embd = 0, ff = 0, heads = 0, kv_heads = 0, head_dim = 0, ctx = 0;
  float rope_theta = 0, rms_eps = 0;
  int rope_dim = 0, full_attn_interval = 0, ssm_conv = 0, ssm_state = 0, ssm_k_heads = 0, ssm_v_heads = 0;
  std::vector<int32_t> rope_sections;
  int sliding_window = 0, swa_pattern = 0;
};

std::string presets_help() {
  std::string out = "Presets:\n";
  for (const auto& p : presets()) out += fmt::format("  {:<12} {}\n", p.name, p.summary);
  out += "\nTiny presets copy their tokenizer from a vocab GGUF in the vocab dir (--vocab-dir, $ANVIL_VOCAB_DIR,\n"
         "default " ANVIL_DEFAULT_VOCAB_DIR "); the full-size ones make a synthetic BPE vocab of the real size.\n"
         "Examples:\n"
         "  make-test-model --preset tiny-qwen3 --type Q4_K_M -o tiny-qwen3-q4km.gguf\n"
         "  make-test-model --arch gemma3 --layers 12 --embd 512 --heads 8 --kv-heads 2 --type F32 -o g.gguf\n";
  return out;
}

std::string resolve_vocab_path(const Options& o, const std::string& file) {
  if (file.find('/') != std::string::npos) return file;
  std::string dir = o.vocab_dir;
  if (dir.empty()) {
    const char* env = std::getenv("ANVIL_VOCAB_DIR");
    dir = env && *env ? env : ANVIL_DEFAULT_VOCAB_DIR;
  }
  return dir + "/" + file;
}

Vocab make_vocab(const Options& o, const ModelSpec& s) {
  if (!o.vocab_file.empty() || s.vocab.source == VocabSpec::Source::file) {
    const std::string path = o.vocab_file.empty() ? resolve_vocab_path(o, s.vocab.file) : o.vocab_file;
    if (!std::filesystem::exists(path))
      fail(fmt::format("vocab file '{}' not found (set --vocab FILE, --vocab-dir DIR or $ANVIL_VOCAB_DIR, or use "
                       "--synthetic-vocab N)",
                       path));
    auto v = load_vocab_file(path);
    if (!v) fail(fmt::format("cannot read vocab '{}': {}", path, v.status().to_string()));
    return std::move(v).value();
  }
  return synthetic_vocab(s.vocab, s.vocab.synthetic_size);
}

ModelSpec build_spec(const Options& o, const CLI::App& app) {
  ModelSpec s;
  if (!o.preset.empty()) {
    const Preset* p = find_preset(o.preset);
    if (!p) {
      std::vector<std::string> names;
      for (const auto& q : presets()) names.push_back(q.name);
      std::string msg = fmt::format("unknown preset '{}'; presets: {}", o.preset, join(names, " "));
      fail_usage(msg);
    }
    s = p->spec;
    if (!o.arch.empty() && o.arch != s.arch)
      fail_usage(fmt::format("--arch {} contradicts preset {} (arch {})", o.arch, o.preset, s.arch));
  } else if (!o.arch.empty()) {
    bool known = false;
    for (const auto& a : supported_archs()) known = known || a == o.arch;
    if (!known) fail_usage(fmt::format("unknown architecture '{}'; supported: {}", o.arch, join(supported_archs(), " ")));
    s = defaults_for_arch(o.arch);
  } else {
    fail_usage("give --preset NAME or --arch ARCH (see --help for the presets)");
  }
  auto given = [&](const char* opt) { return app.count(opt) > 0; };
  if (given("--name")) s.name = o.name;
  if (given("--layers")) s.n_layer = o.layers;
  if (given("--embd")) s.n_embd = o.embd;
  if (given("--ff")) s.n_ff = o.ff;
  if (given("--heads")) s.n_head = o.heads;
  if (given("--kv-heads")) s.n_head_kv = o.kv_heads;
  if (given("--head-dim")) s.head_dim = o.head_dim;
  if (given("--ctx")) s.n_ctx = uint32_t(o.ctx);
  if (given("--rope-theta")) s.rope_theta = o.rope_theta;
  if (given("--rms-eps")) s.rms_eps = o.rms_eps;
  if (given("--rope-dim")) {
    s.rope_dim = o.rope_dim;
    if (!given("--rope-sections")) {  // split like Qwen3.5's 11/11/10 of 32
      const int half = o.rope_dim / 2, a = (half + 2) / 3;
      s.rope_sections = {a, a, half - 2 * a, 0};
    }
  }
  if (given("--rope-sections")) s.rope_sections = o.rope_sections;
  if (given("--full-attn-interval")) s.full_attn_interval = o.full_attn_interval;
  if (given("--ssm-conv")) s.ssm_conv = o.ssm_conv;
  if (given("--ssm-state")) s.ssm_state = o.ssm_state;
  if (given("--ssm-k-heads")) s.ssm_k_heads = o.ssm_k_heads;
  if (given("--ssm-v-heads")) s.ssm_v_heads = o.ssm_v_heads;
  if (given("--sliding-window")) s.sliding_window = o.sliding_window;
  if (given("--swa-pattern")) s.swa_pattern = o.swa_pattern;
  if (o.tied && o.untied) fail_usage("--tied and --untied contradict each other");
  if (o.tied) s.tied = true;
  if (o.untied) s.tied = false;
  if (s.arch == "qwen35" && s.rope_dim == 0) s.rope_dim = s.head_dim;
  if (o.synthetic_vocab) {
    if (!o.vocab_file.empty()) fail_usage("--vocab and --synthetic-vocab contradict each other");
    if (o.synthetic_vocab < kMinSyntheticVocab)
      fail_usage(fmt::format("--synthetic-vocab must be at least {}", kMinSyntheticVocab));
    s.vocab.source = VocabSpec::Source::synthetic;
    s.vocab.synthetic_size = o.synthetic_vocab;
  }
  if (const std::string err = validate(s); !err.empty()) fail_usage(err);
  return s;
}

// Picks each tensor's type under the file type's mix (the rules llama.cpp's quantizer uses).
void assign_types(std::vector<TensorPlan>& plan, const ModelSpec& s, quant::FileType ft) {
  std::vector<quant::TensorDesc> descs;
  for (const auto& t : plan) descs.push_back({t.name, t.dims, DType::F32});
  const quant::MixContext ctx = quant::make_mix_context(s.arch, s.n_layer, descs);
  for (size_t i = 0; i < plan.size(); ++i) {
    DType t = quant::choose_type(ft, ctx, descs[i]);
    if (!row_bytes(t, plan[i].dims[0])) {  // odd row length: no block type fits
      const DType fallback = row_bytes(DType::F16, plan[i].dims[0]) && traits(t).quantized ? DType::F16 : DType::F32;
      log().warn("{}: row of {} is not a whole number of {} blocks; using {}", plan[i].name, plan[i].dims[0],
                 dtype_name(t), dtype_name(fallback));
      t = fallback;
    }
    plan[i].type = t;
  }
}

uint64_t n_elements(const TensorPlan& t) {
  uint64_t n = 1;
  for (auto d : t.dims) n *= d;
  return n;
}

uint64_t tensor_bytes(const TensorPlan& t) { return *row_bytes(t.type, t.dims[0]) * (n_elements(t) / t.dims[0]); }

std::string type_counts(const std::vector<TensorPlan>& plan) {
  std::map<std::string, size_t> counts;
  for (const auto& t : plan) counts[std::string(dtype_name(t.type))]++;
  std::vector<std::string> parts;
  for (const auto& [n, c] : counts) parts.push_back(fmt::format("{} {}", n, c));
  return join(parts, ", ");
}

void print_plan(const std::vector<TensorPlan>& plan) {
  size_t w = 4;
  for (const auto& t : plan) w = std::max(w, t.name.size());
  for (const auto& t : plan) {
    std::vector<std::string> d;
    for (auto x : t.dims) d.push_back(std::to_string(x));
    fmt::print("  {:<{}} {:<18} {:<5} {:>12}\n", t.name, w, join(d, " x "), dtype_name(t.type), tensor_bytes(t));
  }
}

Status fill_tensor(const WeightOptions& wo, const TensorPlan& t, uint64_t index, uint8_t* dst, uint64_t size,
                   ThreadPool& pool, ProgressBar& progress) {
  if (size != tensor_bytes(t)) return make_error(StatusCode::internal, t.name, ": size mismatch");
  const uint64_t ne0 = t.dims[0];
  const int64_t n_rows = int64_t(n_elements(t) / ne0);
  const int64_t rps = rows_per_stream(ne0);
  const int64_t n_streams = (n_rows + rps - 1) / rps;
  const uint64_t dst_row = *row_bytes(t.type, ne0);
  std::mutex mu;
  Status first_error;
  pool.parallel_for(n_streams, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(size_t(rps) * ne0);
    for (int64_t st = begin; st < end; ++st) {
      const int64_t r0 = st * rps, nr = std::min(rps, n_rows - r0);
      generate_rows(wo, t.kind, index, ne0, r0, nr, buf.data());
      for (int64_t r = 0; r < nr; ++r) {
        Status s = quant::quantize_row(t.type, buf.data() + uint64_t(r) * ne0, dst + uint64_t(r0 + r) * dst_row,
                                       int64_t(ne0));
        if (!s.is_ok()) {
          std::lock_guard lock(mu);
          if (first_error.is_ok()) first_error = s;
          return;
        }
      }
      progress.add_bytes(uint64_t(nr) * dst_row);
    }
  });
  if (!first_error.is_ok()) return make_error(first_error.code(), t.name, ": ", first_error.message());
  return Status::ok();
}

int run(const Options& o, const CLI::App& app) {
  if (o.list_presets) {
    fmt::print("{}", presets_help());
    return kExitOk;
  }
  quant::FileType ft;
  if (!quant::file_type_from_name(o.type, ft))
    fail_usage(fmt::format("unknown weight type '{}'; choose one of: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K_M "
                           "Q4_K_S Q5_K_M Q6_K",
                           o.type));
  const ModelSpec s = build_spec(o, app);
  if (o.out.empty() && !o.dry_run) fail_usage("give the output file with -o FILE (or use --dry-run)");

  const Vocab vocab = make_vocab(o, s);
  std::vector<TensorPlan> plan = tensor_plan(s, vocab.n_tokens);
  assign_types(plan, s, ft);
  uint64_t params = 0, bytes = 0;
  for (const auto& t : plan) {
    params += n_elements(t);
    bytes += tensor_bytes(t);
  }
  const std::string what =
      fmt::format("{} '{}': {} layers, d {}, ffn {}, heads {}/{} x {}, vocab {} ({}), {}", s.arch, s.name, s.n_layer,
                  s.n_embd, s.n_ff, s.n_head, s.n_head_kv, s.head_dim, vocab.n_tokens, vocab.description,
                  quant::file_type_name(ft));
  if (o.dry_run) {
    fmt::print("{}\n", what);
    print_plan(plan);
    fmt::print("{} tensors ({}), {} params, {} of tensor data\n", plan.size(), type_counts(plan),
               human_count(double(params)), human_bytes(double(bytes)));
    return kExitOk;
  }

  gguf::Writer w;
  w.set("general.architecture", s.arch);
  w.set("general.name", s.name);
  w.set("general.description", fmt::format("synthetic random weights (anvil make-test-model, seed {}, std {})",
                                           o.seed, o.std));
  add_arch_metadata(w, s, vocab.n_tokens);
  w.set("general.file_type", uint32_t(quant::file_type_gguf_id(ft)));
  for (const auto& [k, v] : vocab.keys) w.set(k, v);
  w.set("general.quantization_version", kQuantizationVersion);

  const int n_threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(n_threads);
  ProgressBar progress("make-test-model", plan.size(), bytes, !o.quiet);
  const WeightOptions wo{o.seed, o.std};
  for (size_t i = 0; i < plan.size(); ++i) {
    check(w.add_tensor_lazy(plan[i].name, plan[i].type, plan[i].dims,
                            [&, i](uint8_t* dst, uint64_t size) {
                              progress.begin_item(i, plan[i].name);
                              return fill_tensor(wo, plan[i], i, dst, size, pool, progress);
                            }),
          "adding tensor '" + plan[i].name + "'");
  }
  check(w.write(o.out), "writing '" + o.out + "'");
  progress.finish();
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(o.out, ec);
  fmt::print("wrote {}: {}\n", o.out, what);
  fmt::print("  {} tensors ({}), {} params, {} in {}\n", plan.size(), type_counts(plan), human_count(double(params)),
             human_bytes(double(file_size)), human_duration(progress.elapsed_seconds()));
  return kExitOk;
}

}  // namespace
}  // namespace anvil::tools::mtm

int main(int argc, char** argv) {
  using namespace anvil::tools;
  using namespace anvil::tools::mtm;
  Options o;
  CLI::App app{"make-test-model: write a synthetic GGUF model (random weights; real tensor names, shapes and "
               "metadata keys) for llama, qwen2, qwen3, qwen35 or gemma3",
               "make-test-model"};
  app.set_version_flag("--version", "make-test-model (anvil " ANVIL_VERSION_STRING ")");
  app.footer(presets_help());
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a later option wins

  app.add_option("-p,--preset", o.preset, "Named shape (see Presets below)")->group("Model");
  app.add_option("-a,--arch", o.arch, "Architecture: llama, qwen2, qwen3, qwen35, gemma3 (starts from tiny-ARCH)")
      ->group("Model");
  app.add_option("-o,--out", o.out, "Output GGUF file")->group("Output");
  app.add_option("-t,--type", o.type,
                 "Weight type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_M, Q4_K_S, Q5_K_M, Q6_K "
                 "(mixes as llama.cpp's quantizer; norms stay F32)")
      ->capture_default_str()
      ->group("Output");
  app.add_option("--name", o.name, "general.name")->group("Output");
  app.add_option("--seed", o.seed, "Random seed (same seed, same weights, whatever --threads)")
      ->capture_default_str()
      ->group("Output");
  app.add_option("--std", o.std, "Standard deviation of matrix and bias weights")->capture_default_str()->group("Output");
  app.add_option("--threads", o.threads, "Threads for generation and quantization (0: all cores)")
      ->capture_default_str()
      ->group("Output");
  app.add_flag("--dry-run", o.dry_run, "Print the tensor plan (names, dims, types, bytes) and exit")->group("Output");
  app.add_flag("-q,--quiet", o.quiet, "No progress display")->group("Output");
  app.add_flag("--list-presets", o.list_presets, "List the presets and exit")->group("Output");

  const char* dims = "Dimensions (override the preset)";
  app.add_option("--layers", o.layers, "Number of blocks")->group(dims);
  app.add_option("--embd", o.embd, "Embedding width (d_model)")->group(dims);
  app.add_option("--ff", o.ff, "Feed-forward width")->group(dims);
  app.add_option("--heads", o.heads, "Query heads")->group(dims);
  app.add_option("--kv-heads", o.kv_heads, "Key/value heads (GQA)")->group(dims);
  app.add_option("--head-dim", o.head_dim, "Head size")->group(dims);
  app.add_option("--ctx", o.ctx, "context_length")->group(dims);
  app.add_option("--rope-theta", o.rope_theta, "rope.freq_base")->group(dims);
  app.add_option("--rms-eps", o.rms_eps, "attention.layer_norm_rms_epsilon")->group(dims);
  app.add_flag("--tied", o.tied, "No output.weight (LM head = token_embd)")->group(dims);
  app.add_flag("--untied", o.untied, "Write a separate output.weight")->group(dims);

  const char* q35 = "qwen35 (Gated DeltaNet hybrid)";
  app.add_option("--rope-dim", o.rope_dim, "Rotary dims per head (partial rotary)")->group(q35);
  app.add_option("--rope-sections", o.rope_sections, "4 mrope sections summing to rope-dim/2")
      ->expected(4)
      ->delimiter(',')
      ->group(q35);
  app.add_option("--full-attn-interval", o.full_attn_interval, "Every Nth layer is full attention")->group(q35);
  app.add_option("--ssm-conv", o.ssm_conv, "Conv1d kernel size")->group(q35);
  app.add_option("--ssm-state", o.ssm_state, "DeltaNet head size (key = value head dim)")->group(q35);
  app.add_option("--ssm-k-heads", o.ssm_k_heads, "DeltaNet q/k heads (ssm.group_count)")->group(q35);
  app.add_option("--ssm-v-heads", o.ssm_v_heads, "DeltaNet v heads (ssm.time_step_rank)")->group(q35);

  const char* g3 = "gemma3";
  app.add_option("--sliding-window", o.sliding_window, "attention.sliding_window (tokens)")->group(g3);
  app.add_option("--swa-pattern", o.swa_pattern, "Every Nth layer is global (6 in llama.cpp; other values are written "
                                                 "as attention.sliding_window_pattern)")
      ->group(g3);

  const char* tok = "Tokenizer";
  app.add_option("--vocab", o.vocab_file, "Copy every tokenizer.* key from this vocab GGUF (vocab size = its tokens)")
      ->group(tok);
  app.add_option("--vocab-dir", o.vocab_dir, "Where the tiny presets' vocab GGUFs are (default $ANVIL_VOCAB_DIR, else "
                                             ANVIL_DEFAULT_VOCAB_DIR ")")
      ->group(tok);
  app.add_option("--synthetic-vocab", o.synthetic_vocab, "Make a synthetic byte-level BPE vocab of N tokens instead")
      ->group(tok);

  if (auto rc = parse_command_line(app, argc, argv)) return *rc;
  return run_guarded("make-test-model", [&] { return run(o, app); });
}
