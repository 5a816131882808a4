// Hostile and truncated files: each one is rejected by open() with the right StatusCode and a
// message naming the field and its byte offset; nothing crashes or allocates by a bogus count.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include "gguf/file.h"
#include "raw_gguf.h"
#include "test_util.h"

namespace anvil::gguf {
namespace {

using test::cat;
using test::garr;
using test::gstr;
using test::le;
using test::RawImage;
using test::RawSpec;

constexpr uint32_t kU32 = 4, kI32 = 5, kF32 = 6, kStr = 8, kArr = 9, kU64 = 10;
constexpr uint32_t kF32Type = 0, kF16Type = 1, kQ4_0Type = 2;

RawSpec valid_spec() {
  RawSpec s;
  s.kvs = {
      {"general.architecture", kStr, gstr("test"), {}},
      {"general.alignment", kU32, le<uint32_t>(32), {}},
      {"test.tokens", kArr, garr(kStr, 3, cat({gstr("a"), gstr("bb"), gstr("ccc")})), {}},
      {"test.nested", kArr,
       garr(kArr, 2, cat({garr(kI32, 2, cat({le<int32_t>(1), le<int32_t>(2)})), garr(kI32, 1, le<int32_t>(3))})), {}},
      {"test.f32", kF32, le<float>(1.5f), {}},
  };
  s.tensors = {
      {"tok_embd.weight", {4, 2}, kF32Type, 0, {}},           // 32 bytes
      {"blk.0.attn_q.weight", {32, 2}, kQ4_0Type, 32, {}},    // 36 bytes
      {"output.weight", {3}, kF16Type, 96, {}},               // 6 bytes
  };
  s.data = test::random_bytes(102, 42);
  return s;
}

Status parse(const std::vector<uint8_t>& bytes) { return File::from_memory(bytes, "case").status(); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(GgufMalformed, BaseIsValid) {
  const RawImage img = build(valid_spec());
  auto f = File::from_memory(img.bytes);
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->data_offset(), img.at.at("data"));
  EXPECT_EQ(f->get_string_array("test.tokens").value().size(), 3u);
  EXPECT_EQ(std::memcmp(f->tensor_data(f->tensors()[2]), img.bytes.data() + img.at.at("data") + 96, 6), 0);
}

TEST(GgufMalformed, Version2IsAccepted) {
  RawSpec spec = valid_spec();
  spec.version = 2;
  auto f = File::from_memory(build(spec).bytes);
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->tensors().size(), 3u);
}

struct Case {
  std::string name;
  std::function<void(RawSpec&)> mutate;
  StatusCode code;
  std::vector<std::string> parts;  // substrings the message must contain
  std::string field;               // builder mark whose offset the message must cite ("" = don't check)
  int64_t field_delta = 0;
  std::function<void(std::vector<uint8_t>&)> patch = nullptr;  // applied after building
};

std::vector<Case> cases() {
  const StatusCode C = StatusCode::corrupt_file, U = StatusCode::unsupported;
  std::vector<Case> v;
  v.push_back({"bad_magic", [](RawSpec& s) { s.magic = 0x46554746; }, C, {"header", "bad magic"}, "magic"});
  v.push_back({"version_1", [](RawSpec& s) { s.version = 1; }, U, {"version 1"}, "version"});
  v.push_back({"version_99", [](RawSpec& s) { s.version = 99; }, U, {"version 99"}, "version"});
  v.push_back({"big_endian", [](RawSpec& s) { s.version = 0x03000000; }, U, {"big-endian"}, "version"});
  v.push_back({"huge_kv_count", [](RawSpec& s) { s.n_kv = uint64_t(1) << 62; }, C, {"kv count"}, "n_kv"});
  v.push_back({"huge_tensor_count", [](RawSpec& s) { s.n_tensors = ~uint64_t(0); }, C, {"tensor count"},
               "n_tensors"});
  v.push_back({"huge_array_length",
               [](RawSpec& s) { s.kvs[2].payload = garr(kStr, uint64_t(1) << 60, gstr("a")); }, C,
               {"kv 2 ('test.tokens')", "array length 1152921504606846976"}, "kv2.value", 4});
  v.push_back({"huge_nested_array_length",
               [](RawSpec& s) { s.kvs[3].payload = garr(kArr, 1, garr(kI32, ~uint64_t(0), {})); }, C,
               {"kv 3 ('test.nested'), array element [0]", "array length"}, "kv3.value", 16});
  v.push_back({"huge_string_length",
               [](RawSpec& s) { s.kvs[0].payload = cat({le<uint64_t>(uint64_t(1) << 40), {'t'}}); }, C,
               {"kv 0 ('general.architecture')", "string length 1099511627776"}, "kv0.value"});
  v.push_back({"huge_key_length", [](RawSpec& s) { s.kvs[1].key_len = ~uint64_t(0) - 3; }, C,
               {"kv 1", "key length"}, "kv1.key"});
  v.push_back({"huge_tensor_name_length", [](RawSpec& s) { s.tensors[1].name_len = uint64_t(1) << 50; }, C,
               {"tensor info 1", "tensor name length"}, "ti1.name"});
  v.push_back({"offset_past_end", [](RawSpec& s) { s.tensors[2].offset = 4096; }, C,
               {"tensor info 2 ('output.weight')", "offset 4096 + size 6 ends past the end of the file"},
               "ti2.offset"});
  v.push_back({"offset_overflow", [](RawSpec& s) { s.tensors[0].offset = ~uint64_t(0) - 31; }, C,
               {"tensor info 0", "ends past the end of the file"}, "ti0.offset"});
  v.push_back({"misaligned_offset", [](RawSpec& s) { s.tensors[1].offset = 48; }, C,
               {"tensor info 1 ('blk.0.attn_q.weight')", "offset 48 is not a multiple of the alignment 32"},
               "ti1.offset"});
  v.push_back({"alignment_0", [](RawSpec& s) { s.kvs[1].payload = le<uint32_t>(0); }, C,
               {"kv 1 ('general.alignment')", "general.alignment 0 is not a nonzero power of two"}, "kv1.value"});
  v.push_back({"alignment_3", [](RawSpec& s) { s.kvs[1].payload = le<uint32_t>(3); }, C,
               {"general.alignment 3 is not a nonzero power of two"}, "kv1.value"});
  v.push_back({"alignment_wrong_type",
               [](RawSpec& s) {
                 s.kvs[1].type = kU64;
                 s.kvs[1].payload = le<uint64_t>(32);
               },
               C, {"general.alignment must be uint32, got uint64"}, "kv1.value"});
  v.push_back({"duplicate_key", [](RawSpec& s) { s.kvs[4].key = "test.tokens"; }, C,
               {"kv 4 ('test.tokens')", "duplicate key", "kv 2"}, "kv4.key"});
  v.push_back({"duplicate_tensor_name", [](RawSpec& s) { s.tensors[2].name = "tok_embd.weight"; }, C,
               {"tensor info 2 ('tok_embd.weight')", "duplicate tensor name", "tensor info 0"}, "ti2.name"});
  v.push_back({"unknown_tensor_type", [](RawSpec& s) { s.tensors[0].type = 4; }, C,
               {"tensor info 0 ('tok_embd.weight')", "unknown tensor type 4"}, "ti0.type"});
  v.push_back({"unknown_tensor_type_big", [](RawSpec& s) { s.tensors[2].type = 0xffffffff; }, C,
               {"unknown tensor type 4294967295"}, "ti2.type"});
  v.push_back({"unknown_value_type", [](RawSpec& s) { s.kvs[4].type = 13; }, C,
               {"kv 4 ('test.f32')", "unknown value type 13"}, "kv4.type"});
  v.push_back({"unknown_array_element_type", [](RawSpec& s) { s.kvs[2].payload = garr(99, 1, gstr("a")); }, C,
               {"kv 2 ('test.tokens')", "unknown array element type 99"}, "kv2.value"});
  v.push_back({"n_dims_5", [](RawSpec& s) { s.tensors[0].dims = {4, 2, 1, 1, 1}; }, C,
               {"tensor info 0 ('tok_embd.weight')", "n_dims 5"}, "ti0.n_dims"});
  v.push_back({"n_dims_0", [](RawSpec& s) { s.tensors[0].dims = {}; }, C, {"n_dims 0"}, "ti0.n_dims"});
  v.push_back({"dims_overflow", [](RawSpec& s) { s.tensors[0].dims = {uint64_t(1) << 32, uint64_t(1) << 32}; }, C,
               {"tensor info 0", "dims product overflows"}, "ti0.dim1"});
  v.push_back({"dims_over_int64",
               [](RawSpec& s) { s.tensors[0].dims = {uint64_t(1) << 31, uint64_t(1) << 31, 2}; }, C,
               {"dims product overflows"}, "ti0.dim2"});
  v.push_back({"byte_size_overflow", [](RawSpec& s) { s.tensors[0].dims = {uint64_t(1) << 62}; }, C,
               {"tensor info 0", "byte size overflows"}, "ti0.type"});
  v.push_back({"zero_dim", [](RawSpec& s) { s.tensors[0].dims = {4, 0}; }, C,
               {"tensor info 0 ('tok_embd.weight')", "dims[1] is 0"}, "ti0.dim1"});
  v.push_back({"block_size_mismatch", [](RawSpec& s) { s.tensors[1].dims = {33, 2}; }, C,
               {"tensor info 1 ('blk.0.attn_q.weight')", "dims[0] = 33", "Q4_0 block size 32"}, "ti1.type"});
  v.push_back({"nesting_too_deep",
               [](RawSpec& s) {
                 std::vector<uint8_t> p = garr(kI32, 0, {});
                 for (int i = 0; i < 16; ++i) p = garr(kArr, 1, p);
                 s.kvs[3].payload = p;
               },
               C, {"kv 3 ('test.nested')", "nested deeper than 16"}, "kv3.value", 15 * 12});
  v.push_back({"data_truncated", [](RawSpec& s) { s.data.resize(101); }, C,
               {"tensor info 2 ('output.weight')", "offset 96 + size 6 ends past the end of the file (size "},
               "ti2.offset"});
  v.push_back({"kv_count_too_high", [](RawSpec& s) { s.n_kv = 6; }, C, {}, ""});
  v.push_back({"tensor_count_too_high", [](RawSpec& s) { s.n_tensors = 4; }, C, {"tensor info 3"}, ""});
  return v;
}

TEST(GgufMalformed, EachCaseNamesFieldAndOffset) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    RawSpec spec = valid_spec();
    c.mutate(spec);
    RawImage img = build(spec);
    if (c.patch) c.patch(img.bytes);
    const Status s = parse(img.bytes);
    EXPECT_EQ(s.code(), c.code) << s.to_string();
    for (const auto& p : c.parts) EXPECT_TRUE(contains(s.message(), p)) << s.message() << "\n  wanted: " << p;
    if (!c.field.empty()) {
      const uint64_t at = img.at.at(c.field) + c.field_delta;
      EXPECT_TRUE(contains(s.message(), "(at byte " + std::to_string(at) + ")"))
          << s.message() << "\n  wanted offset " << at;
    }
  }
}

// Cutting the file at every byte of the header, metadata and tensor infos, and at a few points
// in the data section, must always give a clean corrupt_file.
TEST(GgufMalformed, TruncatedAtEveryOffset) {
  const RawImage img = build(valid_spec());
  std::vector<size_t> cuts;
  for (size_t n = 0; n < img.at.at("data"); ++n) cuts.push_back(n);
  for (size_t n : {img.at.at("data"), img.at.at("data") + 1, img.at.at("data") + 50, img.bytes.size() - 1})
    cuts.push_back(n);
  size_t truncated_msgs = 0;
  for (size_t n : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(n));
    const std::vector<uint8_t> prefix(img.bytes.begin(), img.bytes.begin() + n);
    const Status s = parse(prefix);
    ASSERT_EQ(s.code(), StatusCode::corrupt_file) << s.to_string();
    EXPECT_TRUE(contains(s.message(), "truncated") || contains(s.message(), "cannot fit") ||
                contains(s.message(), "bytes left") || contains(s.message(), "past the end"))
        << s.message();
    EXPECT_TRUE(contains(s.message(), "(at byte ")) << s.message();
    truncated_msgs += contains(s.message(), "truncated");
  }
  EXPECT_GT(truncated_msgs, cuts.size() / 4);
}

// Every single-byte change in the structured part either parses or fails cleanly; a file that
// parses has every tensor's bytes inside the image.
TEST(GgufMalformed, ByteFlipsNeverCrash) {
  const RawImage img = build(valid_spec());
  for (size_t i = 0; i < img.at.at("end_of_infos"); ++i) {
    for (uint8_t x : {uint8_t(0x00), uint8_t(0xff), uint8_t(0x80), uint8_t(img.bytes[i] ^ 1), uint8_t(img.bytes[i] + 7)}) {
      std::vector<uint8_t> b = img.bytes;
      b[i] = x;
      auto f = File::from_memory(b);
      if (!f) {
        EXPECT_NE(f.status().code(), StatusCode::ok);
        EXPECT_FALSE(f.status().message().empty());
        continue;
      }
      for (const TensorInfo& t : f->tensors()) {
        const uint8_t* p = f->tensor_data(t);
        ASSERT_GE(p, b.data());
        ASSERT_LE(p + t.size, b.data() + b.size());
      }
      for (const KeyValue& kv : f->metadata()) (void)kv.value.to_string();
    }
  }
}

// The committed corpus (tests/data/gguf/malformed/MANIFEST): "file code substring...".
TEST(GgufMalformed, CommittedCorpus) {
  const std::string dir = std::string(ANVIL_TEST_DATA_DIR) + "/gguf/malformed/";
  std::ifstream manifest(dir + "MANIFEST");
  ASSERT_TRUE(manifest) << "missing " << dir << "MANIFEST";
  std::string line;
  int n = 0;
  while (std::getline(manifest, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string file, code;
    in >> file >> code;
    std::string rest;
    std::getline(in >> std::ws, rest);
    SCOPED_TRACE(file);
    const Status s = File::open(dir + file).status();
    EXPECT_EQ(status_code_name(s.code()), code) << s.to_string();
    // substrings are separated by " | "
    for (size_t start = 0; start <= rest.size();) {
      size_t end = rest.find(" | ", start);
      if (end == std::string::npos) end = rest.size();
      const std::string part = rest.substr(start, end - start);
      EXPECT_TRUE(contains(s.message(), part)) << s.message() << "\n  wanted: " << part;
      start = end + 3;
    }
    ++n;
  }
  EXPECT_GE(n, 8);
}

// Regenerates tests/data/gguf/malformed and the fuzz seed of the base file:
//   test_gguf --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_Regenerate*'
TEST(GgufMalformed, DISABLED_RegenerateCommittedCorpus) {
  const std::string dir = std::string(ANVIL_TEST_DATA_DIR) + "/gguf/";
  const std::vector<std::string> keep = {"bad_magic",       "version_1",           "big_endian",
                                         "huge_kv_count",   "huge_array_length",   "huge_string_length",
                                         "offset_past_end", "misaligned_offset",   "alignment_3",
                                         "duplicate_key",   "duplicate_tensor_name", "unknown_tensor_type",
                                         "unknown_value_type", "n_dims_5",        "dims_overflow",
                                         "zero_dim",        "block_size_mismatch", "nesting_too_deep"};
  std::ofstream manifest(dir + "malformed/MANIFEST");
  manifest << "# file  status-code  message substrings separated by ' | ' (generated by malformed_test.cpp)\n";
  for (const Case& c : cases()) {
    if (std::find(keep.begin(), keep.end(), c.name) == keep.end()) continue;
    RawSpec spec = valid_spec();
    c.mutate(spec);
    RawImage img = build(spec);
    test::write_file(dir + "malformed/" + c.name + ".gguf", img.bytes);
    manifest << c.name << ".gguf " << status_code_name(c.code) << " ";
    for (size_t i = 0; i < c.parts.size(); ++i) manifest << (i ? " | " : "") << c.parts[i];
    manifest << "\n";
  }
  test::write_file(dir + "seeds/raw_base.gguf", build(valid_spec()).bytes);
}

}  // namespace
}  // namespace anvil::gguf
