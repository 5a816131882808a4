// anvil inspect FILE [--json] [--tensor NAME [--dequant OUT.npy]]
//
// Text mode prints the metadata (long strings and arrays abbreviated), the tensor table and
// totals. --json prints one JSON document with every key (arrays longer than --max-array give
// their length and first items) and every tensor. --tensor shows one tensor (with value
// statistics); --dequant writes it as float32 .npy in numpy's row-major shape (GGUF dims
// reversed), streamed so a large tensor never sits in memory at once.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "anvil/commands.h"
#include "common/cli.h"
#include "common/npy.h"
#include "core/dtype.h"
#include "gguf/file.h"
#include "quant/quant.h"

namespace anvil::tools {
namespace {

using ordered_json = nlohmann::ordered_json;

struct InspectOptions {
  std::string path;
  bool json = false;
  size_t max_array = 16;
  std::string tensor;
  std::string dequant_out;
  int threads = 0;
};

// ---------------------------------------------------------------- rendering values as text

std::string escape_for_line(const std::string& s, size_t max_chars) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max_chars) break;
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      default:
        if (c < 0x20 || c == 0x7f)
          out += fmt::format("\\x{:02x}", c);
        else
          out += char(c);
    }
  }
  if (out.size() >= max_chars && s.size() > max_chars) out += fmt::format("... ({} chars)", s.size());
  return out;
}

std::string scalar_text(const gguf::Value& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return '"' + escape_for_line(x, 96) + '"';
        } else if constexpr (std::is_same_v<T, gguf::Array>) {
          return "[...]";
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
          return fmt::format("{}", x);
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          return std::to_string(int(x));
        } else {
          return std::to_string(x);
        }
      },
      v.v);
}

std::string value_text(const gguf::Value& v, size_t max_items) {
  if (const auto* a = std::get_if<gguf::Array>(&v.v)) {
    std::string out = "[";
    const size_t n = std::min(a->items.size(), max_items);
    for (size_t i = 0; i < n; ++i) {
      if (i) out += ", ";
      out += value_text(a->items[i], std::max<size_t>(2, max_items / 2));
    }
    if (a->items.size() > n) out += fmt::format(", ... ({} more)", a->items.size() - n);
    return out + "]";
  }
  return scalar_text(v);
}

std::string type_text(const gguf::Value& v) {
  if (const auto* a = std::get_if<gguf::Array>(&v.v))
    return fmt::format("{}[{}]", gguf::value_type_name(a->type), a->items.size());
  return gguf::value_type_name(v.type());
}

// ---------------------------------------------------------------- rendering values as JSON

ordered_json value_json(const gguf::Value& v, size_t max_array) {
  return std::visit(
      [&](const auto& x) -> ordered_json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, gguf::Array>) {
          ordered_json arr = ordered_json::array();
          const size_t n = std::min(x.items.size(), max_array);
          for (size_t i = 0; i < n; ++i) arr.push_back(value_json(x.items[i], max_array));
          return arr;
        } else if constexpr (std::is_same_v<T, float>) {
          return double(x);
        } else {
          return x;
        }
      },
      v.v);
}

ordered_json metadata_entry_json(const gguf::Value& v, size_t max_array) {
  ordered_json e;
  e["type"] = gguf::value_type_name(v.type());
  if (const auto* a = std::get_if<gguf::Array>(&v.v)) {
    e["item_type"] = gguf::value_type_name(a->type);
    e["length"] = a->items.size();
    if (a->items.size() > max_array) {
      e["truncated"] = true;
      e["head"] = value_json(v, max_array);
      return e;
    }
  }
  e["value"] = value_json(v, max_array);
  return e;
}

// ---------------------------------------------------------------- totals

std::vector<uint64_t> numpy_shape(const gguf::TensorInfo& t) {
  return std::vector<uint64_t>(t.dims.rbegin(), t.dims.rend());
}

std::string dims_text(const std::vector<uint64_t>& dims) {
  std::vector<std::string> parts;
  for (auto d : dims) parts.push_back(std::to_string(d));
  return join(parts, " x ");
}

struct Totals {
  uint64_t params = 0, bytes = 0;
  std::map<std::string, std::pair<size_t, uint64_t>> by_type;  // name -> (count, bytes)
  double bits_per_weight() const { return params ? 8.0 * double(bytes) / double(params) : 0.0; }
};

Totals compute_totals(const gguf::File& f) {
  Totals t;
  for (const auto& ti : f.tensors()) {
    t.params += ti.n_elements();
    t.bytes += ti.size;
    auto& slot = t.by_type[std::string(dtype_name(ti.type))];
    slot.first += 1;
    slot.second += ti.size;
  }
  return t;
}

// ---------------------------------------------------------------- modes

void print_text(const gguf::File& f) {
  fmt::print("file: {}\n", f.path());
  fmt::print("  GGUF v{}, {} ({} bytes), alignment {}, tensor data at offset {}\n", f.version(),
             human_bytes(double(f.file_size())), f.file_size(), f.alignment(), f.data_offset());
  fmt::print("\nmetadata: {} keys\n", f.metadata().size());
  size_t key_w = 10;
  for (const auto& kv : f.metadata()) key_w = std::max(key_w, kv.key.size());
  key_w = std::min<size_t>(key_w, 48);
  for (const auto& kv : f.metadata())
    fmt::print("  {:<{}} {:<14} {}\n", kv.key, key_w, type_text(kv.value), value_text(kv.value, 8));

  const auto& tensors = f.tensors();
  fmt::print("\ntensors: {}\n", tensors.size());
  size_t name_w = 4;
  for (const auto& t : tensors) name_w = std::max(name_w, t.name.size());
  fmt::print("  {:>5} {:<{}} {:<6} {:<22} {:>12} {:>14}\n", "#", "name", name_w, "type", "shape (GGUF dims)",
             "bytes", "offset");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    fmt::print("  {:>5} {:<{}} {:<6} {:<22} {:>12} {:>14}\n", i, t.name, name_w, dtype_name(t.type),
               dims_text(t.dims), t.size, t.offset);
  }

  const Totals tot = compute_totals(f);
  fmt::print("\ntotals: {} params ({}), {} of tensor data, {:.3f} bits per weight\n", human_count(double(tot.params)),
             tot.params, human_bytes(double(tot.bytes)), tot.bits_per_weight());
  fmt::print("types:");
  for (const auto& [name, cb] : tot.by_type)
    fmt::print("  {} x{} ({})", name, cb.first, human_bytes(double(cb.second)));
  fmt::print("\n");
}

void print_json(const gguf::File& f, size_t max_array) {
  ordered_json doc;
  doc["path"] = f.path();
  doc["version"] = f.version();
  doc["file_size"] = f.file_size();
  doc["alignment"] = f.alignment();
  doc["data_offset"] = f.data_offset();
  ordered_json meta = ordered_json::object();
  for (const auto& kv : f.metadata()) meta[kv.key] = metadata_entry_json(kv.value, max_array);
  doc["metadata"] = std::move(meta);
  ordered_json tensors = ordered_json::array();
  for (const auto& t : f.tensors()) {
    ordered_json j;
    j["name"] = t.name;
    j["type"] = std::string(dtype_name(t.type));
    j["type_id"] = uint32_t(t.type);
    j["dims"] = t.dims;
    j["shape"] = numpy_shape(t);
    j["n_elements"] = t.n_elements();
    j["bytes"] = t.size;
    j["offset"] = t.offset;
    j["file_offset"] = f.data_offset() + t.offset;
    tensors.push_back(std::move(j));
  }
  doc["tensors"] = std::move(tensors);
  const Totals tot = compute_totals(f);
  ordered_json totals;
  totals["n_tensors"] = f.tensors().size();
  totals["params"] = tot.params;
  totals["bytes"] = tot.bytes;
  totals["bits_per_weight"] = tot.bits_per_weight();
  ordered_json types = ordered_json::object();
  for (const auto& [name, cb] : tot.by_type) types[name] = {{"count", cb.first}, {"bytes", cb.second}};
  totals["types"] = std::move(types);
  doc["totals"] = std::move(totals);
  // token strings need not be valid UTF-8; replace bad bytes rather than throw
  std::string out = doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fputc('\n', stdout);
}

const gguf::TensorInfo& find_tensor_or_fail(const gguf::File& f, const std::string& name) {
  if (const auto* t = f.find_tensor(name)) return *t;
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) names.push_back(t.name);
  std::string msg = fmt::format("no tensor named '{}' in '{}' ({} tensors)", name, f.path(), names.size());
  const auto near = close_matches(name, names);
  if (!near.empty()) msg += "; did you mean " + join(near, ", ") + "?";
  fail(msg);
}

void require_dequantizer(const gguf::TensorInfo& t) {
  if (quant::has_reference(t.type)) return;
  std::vector<std::string> ok;
  for (uint32_t id = 0; id < 64; ++id) {
    auto tr = dtype_traits(id);
    if (tr && quant::has_reference(tr->type)) ok.emplace_back(tr->name);
  }
  fail(fmt::format("tensor '{}' has type {}, which has no reference dequantizer (supported: {})", t.name,
                   dtype_name(t.type), join(ok, " ")));
}

// Calls fn(rows_begin, n_rows, values) over the tensor in chunks of about 1M values.
void for_each_dequantized_chunk(const gguf::File& f, const gguf::TensorInfo& t, int threads,
                                const std::function<void(const float*, uint64_t)>& fn) {
  const uint64_t ne0 = t.dims.empty() ? 1 : t.dims[0];
  const uint64_t n_rows = t.n_rows();
  const uint64_t row_size = t.row_size();
  const uint64_t rows_per_chunk = std::max<uint64_t>(1, (uint64_t(1) << 20) / std::max<uint64_t>(ne0, 1));
  std::vector<float> buf(size_t(std::min(n_rows, rows_per_chunk) * ne0));
  const uint8_t* base = f.tensor_data(t);
  for (uint64_t r = 0; r < n_rows; r += rows_per_chunk) {
    const uint64_t nr = std::min(rows_per_chunk, n_rows - r);
    check(quant::dequantize_rows(t.type, base + r * row_size, buf.data(), int64_t(ne0), int64_t(nr), threads),
          "dequantizing '" + t.name + "'");
    fn(buf.data(), nr * ne0);
  }
}

void print_tensor(const gguf::File& f, const gguf::TensorInfo& t, int threads) {
  fmt::print("tensor: {}\n", t.name);
  fmt::print("  type {}, dims (GGUF) [{}], numpy shape ({}), {} elements\n", dtype_name(t.type),
             join([&] { std::vector<std::string> v; for (auto d : t.dims) v.push_back(std::to_string(d)); return v; }(), ", "),
             join([&] { std::vector<std::string> v; for (auto d : numpy_shape(t)) v.push_back(std::to_string(d)); return v; }(), ", "),
             t.n_elements());
  fmt::print("  {} bytes at data offset {} (file offset {})\n", t.size, t.offset, f.data_offset() + t.offset);
  if (!quant::has_reference(t.type)) {
    fmt::print("  (no reference dequantizer for {}: no statistics)\n", dtype_name(t.type));
    return;
  }
  double sum = 0, sum2 = 0, mn = INFINITY, mx = -INFINITY;
  uint64_t n = 0, nonfinite = 0;
  for_each_dequantized_chunk(f, t, threads, [&](const float* v, uint64_t count) {
    for (uint64_t i = 0; i < count; ++i) {
      const double x = v[i];
      if (!std::isfinite(x)) {
        ++nonfinite;
        continue;
      }
      sum += x;
      sum2 += x * x;
      mn = std::min(mn, x);
      mx = std::max(mx, x);
      ++n;
    }
  });
  const double mean = n ? sum / double(n) : 0.0;
  const double var = n ? std::max(0.0, sum2 / double(n) - mean * mean) : 0.0;
  fmt::print("  values: min {:.6g}, max {:.6g}, mean {:.6g}, std {:.6g}, non-finite {}\n", n ? mn : 0.0,
             n ? mx : 0.0, mean, std::sqrt(var), nonfinite);
}

void write_dequantized(const gguf::File& f, const gguf::TensorInfo& t, const std::string& out, int threads) {
  require_dequantizer(t);
  auto w = NpyWriter::create(out, numpy_shape(t));
  check(w.status());
  for_each_dequantized_chunk(f, t, threads, [&](const float* v, uint64_t count) { check(w->append(v, count)); });
  check(w->close());
  std::fprintf(stderr, "wrote %s: %s, float32, shape (%s)\n", out.c_str(), t.name.c_str(),
               join([&] { std::vector<std::string> v; for (auto d : numpy_shape(t)) v.push_back(std::to_string(d)); return v; }(), ", ").c_str());
}

int run_inspect(const InspectOptions& o) {
  if (!o.dequant_out.empty() && o.tensor.empty()) fail_usage("--dequant needs --tensor NAME");
  const int threads = o.threads > 0 ? o.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  const gguf::File f = open_gguf_or_fail(o.path);
  if (!o.tensor.empty()) {
    const gguf::TensorInfo& t = find_tensor_or_fail(f, o.tensor);
    if (!o.dequant_out.empty())
      write_dequantized(f, t, o.dequant_out, threads);
    else
      print_tensor(f, t, threads);
    return kExitOk;
  }
  if (o.json)
    print_json(f, o.max_array);
  else
    print_text(f);
  return kExitOk;
}

}  // namespace

CommandAction setup_inspect(CLI::App& cmd) {
  auto o = std::make_shared<InspectOptions>();
  cmd.footer(
      "Show a GGUF file's metadata (key, type, value) and tensors (name, type, shape, bytes, offset) with "
      "totals (params, bytes, bits per weight, types). With --tensor, show one tensor and its value "
      "statistics, or write it dequantized to float32 .npy with --dequant.");
  cmd.add_option("FILE", o->path, "GGUF file to inspect")->required();
  cmd.add_flag("--json", o->json, "Print one JSON document (all metadata and tensors) instead of text");
  cmd.add_option("--max-array", o->max_array, "In --json, arrays longer than this give their length and first items")
      ->capture_default_str()
      ->check(CLI::Range(size_t(0), size_t(1) << 40));
  cmd.add_option("-t,--tensor", o->tensor, "Show only this tensor (by exact name)");
  cmd.add_option("--dequant", o->dequant_out,
                 "With --tensor: write the tensor dequantized to float32 as a NumPy .npy file (shape = GGUF dims reversed)");
  cmd.add_option("--threads", o->threads, "Threads for dequantization (0: all cores)")->capture_default_str();
  return [o] { return run_inspect(*o); };
}

}  // namespace anvil::tools
