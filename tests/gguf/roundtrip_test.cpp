// Writer -> File round trips: every value type, nested and empty arrays, alignment, tensors of
// every known dtype, lazy tensors, progress, atomic writes and the writer's argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "gguf/file.h"
#include "gguf/writer.h"
#include "test_util.h"

namespace anvil::gguf {
namespace {

using test::make_array;
using test::random_bytes;
using test::same_value;
using test::ScratchDir;

std::vector<std::pair<std::string, Value>> every_value() {
  std::vector<std::pair<std::string, Value>> kv;
  kv.emplace_back("t.u8", Value{uint8_t(255)});
  kv.emplace_back("t.i8", Value{int8_t(-128)});
  kv.emplace_back("t.u16", Value{uint16_t(65535)});
  kv.emplace_back("t.i16", Value{int16_t(-32768)});
  kv.emplace_back("t.u32", Value{uint32_t(4294967295u)});
  kv.emplace_back("t.i32", Value{int32_t(std::numeric_limits<int32_t>::min())});
  kv.emplace_back("t.f32", Value{1.5e-30f});
  kv.emplace_back("t.f32.nan", Value{std::numeric_limits<float>::quiet_NaN()});
  kv.emplace_back("t.f32.negzero", Value{-0.0f});
  kv.emplace_back("t.f32.inf", Value{-std::numeric_limits<float>::infinity()});
  kv.emplace_back("t.f32.denorm", Value{std::numeric_limits<float>::denorm_min()});
  kv.emplace_back("t.bool.true", Value{true});
  kv.emplace_back("t.bool.false", Value{false});
  kv.emplace_back("t.str", Value{std::string("hello")});
  kv.emplace_back("t.str.empty", Value{std::string()});
  kv.emplace_back("t.str.unicode", Value{std::string("Grüße, 世界 🦙 \xce\xbb\n\t\"quoted\"")});
  kv.emplace_back("t.str.nul", Value{std::string("a\0b", 3)});
  kv.emplace_back("t.u64", Value{std::numeric_limits<uint64_t>::max()});
  kv.emplace_back("t.i64", Value{std::numeric_limits<int64_t>::min()});
  kv.emplace_back("t.f64", Value{3.141592653589793});
  kv.emplace_back("t.f64.max", Value{std::numeric_limits<double>::max()});
  kv.emplace_back("键.unicode.key", Value{uint8_t(1)});

  kv.emplace_back("a.u8", make_array(ValueType::UINT8, {Value{uint8_t(0)}, Value{uint8_t(200)}}));
  kv.emplace_back("a.i8", make_array(ValueType::INT8, {Value{int8_t(-1)}, Value{int8_t(127)}}));
  kv.emplace_back("a.u16", make_array(ValueType::UINT16, {Value{uint16_t(1)}, Value{uint16_t(60000)}}));
  kv.emplace_back("a.i16", make_array(ValueType::INT16, {Value{int16_t(-300)}}));
  kv.emplace_back("a.u32", make_array(ValueType::UINT32, {Value{uint32_t(7)}, Value{uint32_t(1u << 31)}}));
  kv.emplace_back("a.i32", make_array(ValueType::INT32, {Value{int32_t(-7)}, Value{int32_t(1 << 30)}}));
  kv.emplace_back("a.f32", make_array(ValueType::FLOAT32, {Value{0.25f}, Value{-1e10f}}));
  kv.emplace_back("a.bool", make_array(ValueType::BOOL, {Value{true}, Value{false}, Value{true}}));
  kv.emplace_back("a.str", make_array(ValueType::STRING, {Value{std::string("x")}, Value{std::string()},
                                                          Value{std::string("ü€𝄞")}}));
  kv.emplace_back("a.u64", make_array(ValueType::UINT64, {Value{uint64_t(1) << 63}}));
  kv.emplace_back("a.i64", make_array(ValueType::INT64, {Value{int64_t(-5)}, Value{int64_t(1) << 40}}));
  kv.emplace_back("a.f64", make_array(ValueType::FLOAT64, {Value{1e300}, Value{-2.5}}));
  for (uint32_t t = 0; t <= uint32_t(ValueType::FLOAT64); ++t)
    kv.emplace_back(std::string("a.empty.") + value_type_name(ValueType(t)), make_array(ValueType(t), {}));

  Value strs1 = make_array(ValueType::STRING, {Value{std::string("a")}, Value{std::string("bc")}});
  Value strs2 = make_array(ValueType::STRING, {});
  Value strs3 = make_array(ValueType::STRING, {Value{std::string("Ω")}});
  kv.emplace_back("n.arr_of_arr_of_str", make_array(ValueType::ARRAY, {strs1, strs2, strs3}));
  Value ints = make_array(ValueType::INT32, {Value{int32_t(1)}, Value{int32_t(2)}});
  Value lvl2 = make_array(ValueType::ARRAY, {ints, make_array(ValueType::INT32, {})});
  kv.emplace_back("n.three_levels", make_array(ValueType::ARRAY, {lvl2, make_array(ValueType::ARRAY, {})}));
  kv.emplace_back("n.arr_of_empty", make_array(ValueType::ARRAY, {make_array(ValueType::FLOAT64, {}),
                                                                  make_array(ValueType::FLOAT64, {})}));
  Value deep = Value{uint16_t(9)};
  ValueType inner = ValueType::UINT16;
  for (int i = 0; i < 15; ++i) {  // 15 levels of arrays: within the reader's cap of 16
    deep = make_array(inner, {deep});
    inner = ValueType::ARRAY;
  }
  kv.emplace_back("n.deep", deep);
  return kv;
}

struct TensorSpec {
  std::string name;
  DType type;
  std::vector<uint64_t> dims;
  std::vector<uint8_t> bytes;
};

std::vector<TensorSpec> every_dtype_tensors() {
  std::vector<TensorSpec> out;
  uint64_t seed = 1;
  for (uint32_t id = 0; id < 64; ++id) {
    const auto tr = dtype_traits(id);
    if (!tr) continue;
    const std::vector<std::vector<uint64_t>> shapes = {
        {uint64_t(tr->block_size)}, {uint64_t(tr->block_size) * 3, 2}, {uint64_t(tr->block_size) * 2, 1, 3, 2}};
    for (size_t s = 0; s < shapes.size(); ++s) {
      TensorSpec t{std::string("blk.") + tr->name + "." + std::to_string(s) + ".weight", tr->type, shapes[s], {}};
      const uint64_t size = *row_bytes(tr->type, shapes[s][0]) * (t.dims.size() > 1 ? t.dims[1] : 1) *
                            (t.dims.size() > 2 ? t.dims[2] * t.dims[3] : 1);
      t.bytes = random_bytes(size_t(size), seed++);
      out.push_back(std::move(t));
    }
  }
  return out;
}

void expect_same_file(const File& f, const std::vector<std::pair<std::string, Value>>& kv,
                      const std::vector<TensorSpec>& tensors, uint32_t alignment) {
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), alignment);
  EXPECT_EQ(f.data_offset() % alignment, 0u);
  size_t i = 0;
  for (const auto& [key, value] : kv) {
    ASSERT_LT(i, f.metadata().size());
    EXPECT_EQ(f.metadata()[i].key, key);
    EXPECT_TRUE(same_value(f.metadata()[i].value, value))
        << key << ": wrote " << value.to_string() << ", read " << f.metadata()[i].value.to_string();
    const Value* found = f.find(key);
    ASSERT_NE(found, nullptr) << key;
    EXPECT_TRUE(same_value(*found, value)) << key;
    ++i;
  }
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    const TensorInfo& info = f.tensors()[t];
    EXPECT_EQ(info.name, tensors[t].name);
    EXPECT_EQ(info.type, tensors[t].type);
    EXPECT_EQ(info.dims, tensors[t].dims);
    EXPECT_EQ(info.size, tensors[t].bytes.size());
    EXPECT_EQ(info.offset % alignment, 0u);
    EXPECT_EQ((f.data_offset() + info.offset) % alignment, 0u);
    EXPECT_EQ(info.row_size() * info.n_rows(), info.size);
    EXPECT_EQ(f.find_tensor(info.name), &info);
    ASSERT_EQ(std::memcmp(f.tensor_data(info), tensors[t].bytes.data(), tensors[t].bytes.size()), 0)
        << info.name;
  }
}

TEST(GgufRoundTrip, EveryValueTypeAndDtype) {
  ScratchDir dir("rt_every");
  const auto kv = every_value();
  const auto tensors = every_dtype_tensors();
  Writer w;
  for (const auto& [k, v] : kv) w.set(k, v);
  for (const auto& t : tensors) ASSERT_TRUE(w.add_tensor(t.name, t.type, t.dims, t.bytes).is_ok()) << t.name;
  EXPECT_EQ(w.n_tensors(), tensors.size());
  const std::string path = dir.file("every.gguf");
  ASSERT_TRUE(w.write(path).is_ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto f = File::open(path);
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(f->file_size(), std::filesystem::file_size(path));
  expect_same_file(*f, kv, tensors, 32);
  EXPECT_FALSE(f->has("general.alignment"));  // the default is not written

  // The same image parsed from memory reads identically.
  const std::vector<uint8_t> image = test::read_file(path);
  auto m = File::from_memory(image, "image");
  ASSERT_TRUE(m) << m.status().to_string();
  expect_same_file(*m, kv, tensors, 32);
}

TEST(GgufRoundTrip, CustomAlignment) {
  ScratchDir dir("rt_align");
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    Writer w(alignment);
    w.set("general.architecture", "test");
    std::vector<TensorSpec> tensors = {{"a", DType::F32, {3}, random_bytes(12, alignment)},
                                       {"b", DType::Q8_0, {64, 2}, random_bytes(34 * 4, alignment + 1)},
                                       {"c", DType::F16, {5}, random_bytes(10, alignment + 2)}};
    for (const auto& t : tensors) ASSERT_TRUE(w.add_tensor(t.name, t.type, t.dims, t.bytes).is_ok());
    const std::string path = dir.file("a" + std::to_string(alignment) + ".gguf");
    ASSERT_TRUE(w.write(path).is_ok());
    auto f = File::open(path);
    ASSERT_TRUE(f) << f.status().to_string();
    std::vector<std::pair<std::string, Value>> kv = {{"general.architecture", Value{std::string("test")}}};
    if (alignment != 32) kv.emplace_back("general.alignment", Value{alignment});
    expect_same_file(*f, kv, tensors, alignment);
  }
  // Alignment given as a key rather than to the constructor.
  Writer w;
  w.set("general.alignment", uint32_t(128));
  std::vector<TensorSpec> tensors = {{"x", DType::I8, {7}, random_bytes(7, 5)}, {"y", DType::I32, {1}, random_bytes(4, 6)}};
  for (const auto& t : tensors) ASSERT_TRUE(w.add_tensor(t.name, t.type, t.dims, t.bytes).is_ok());
  ASSERT_TRUE(w.write(dir.file("key.gguf")).is_ok());
  auto f = File::open(dir.file("key.gguf"));
  ASSERT_TRUE(f) << f.status().to_string();
  expect_same_file(*f, {{"general.alignment", Value{uint32_t(128)}}}, tensors, 128);
}

TEST(GgufRoundTrip, LazyTensorsAndProgress) {
  ScratchDir dir("rt_lazy");
  Writer w;
  const auto eager = random_bytes(4 * 10, 11);
  const auto lazy1 = random_bytes(18 * 4, 12);
  const auto lazy2 = random_bytes(144, 13);
  ASSERT_TRUE(w.add_tensor("eager", DType::F32, {10}, eager).is_ok());
  ASSERT_TRUE(w.add_tensor_lazy("lazy1", DType::Q4_0, {64, 2}, [&](uint8_t* dst, uint64_t size) {
                 EXPECT_EQ(size, lazy1.size());
                 std::memcpy(dst, lazy1.data(), size);
                 return Status::ok();
               }).is_ok());
  ASSERT_TRUE(w.add_tensor_lazy("lazy2", DType::Q4_K, {256}, [&](uint8_t* dst, uint64_t size) {
                 EXPECT_EQ(size, lazy2.size());
                 std::memcpy(dst, lazy2.data(), size);
                 return Status::ok();
               }).is_ok());
  std::vector<std::pair<size_t, size_t>> calls;
  ASSERT_TRUE(w.write(dir.file("lazy.gguf"), [&](size_t done, size_t total) { calls.emplace_back(done, total); })
                  .is_ok());
  EXPECT_EQ(calls, (std::vector<std::pair<size_t, size_t>>{{1, 3}, {2, 3}, {3, 3}}));
  auto f = File::open(dir.file("lazy.gguf"));
  ASSERT_TRUE(f) << f.status().to_string();
  expect_same_file(*f, {},
                   {{"eager", DType::F32, {10}, eager}, {"lazy1", DType::Q4_0, {64, 2}, lazy1},
                    {"lazy2", DType::Q4_K, {256}, lazy2}},
                   32);
}

TEST(GgufRoundTrip, NoTensorsNoMetadata) {
  ScratchDir dir("rt_empty");
  ASSERT_TRUE(Writer().write(dir.file("empty.gguf")).is_ok());
  auto f = File::open(dir.file("empty.gguf"));
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->find_tensor("x"), nullptr);
  EXPECT_EQ(f->find("x"), nullptr);
}

TEST(GgufRoundTrip, SetReplacesInPlace) {
  ScratchDir dir("rt_replace");
  Writer w;
  w.set("a", uint32_t(1));
  w.set("b", "two");
  w.set("a", uint64_t(3));
  w.set_array("c", std::vector<int32_t>{1, -2});
  w.set_array("d", std::vector<uint32_t>{4});
  w.set_array("e", std::vector<float>{0.5f});
  w.set_array("f", std::vector<std::string>{"x", "y"});
  w.set("g", int32_t(-4));
  w.set("h", 2.5f);
  w.set("i", false);
  ASSERT_TRUE(w.write(dir.file("r.gguf")).is_ok());
  auto f = File::open(dir.file("r.gguf"));
  ASSERT_TRUE(f) << f.status().to_string();
  ASSERT_EQ(f->metadata().size(), 9u);
  EXPECT_EQ(f->metadata()[0].key, "a");
  EXPECT_EQ(f->metadata()[0].value.type(), ValueType::UINT64);
  EXPECT_EQ(f->get_u64("a").value(), 3u);
  EXPECT_EQ(f->get_string("b").value(), "two");
  EXPECT_EQ(f->get_int_array("c").value(), (std::vector<int64_t>{1, -2}));
  EXPECT_EQ(f->get_int_array("d").value(), (std::vector<int64_t>{4}));
  EXPECT_EQ(f->get_float_array("e").value(), (std::vector<float>{0.5f}));
  EXPECT_EQ(f->get_string_array("f").value(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(f->get_i64("g").value(), -4);
  EXPECT_EQ(f->get_f32("h").value(), 2.5f);
  EXPECT_EQ(f->get_bool("i").value(), false);
}

TEST(GgufWriter, RejectsBadArguments) {
  ScratchDir dir("w_bad");
  Writer w;
  const auto b = random_bytes(16, 1);
  EXPECT_EQ(w.add_tensor("x", DType::F32, {3}, b).code(), StatusCode::invalid_argument);  // 16 != 12
  EXPECT_EQ(w.add_tensor("x", DType::Q4_0, {16}, b).code(), StatusCode::invalid_argument);  // block 32
  EXPECT_EQ(w.add_tensor("x", DType::F32, {}, {}).code(), StatusCode::invalid_argument);
  EXPECT_EQ(w.add_tensor("x", DType::F32, {1, 1, 1, 1, 1}, random_bytes(4, 1)).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(w.add_tensor("x", DType::F32, {4, 0}, {}).code(), StatusCode::invalid_argument);
  EXPECT_EQ(w.add_tensor("x", DType(4), {4}, b).code(), StatusCode::invalid_argument);
  EXPECT_EQ(w.add_tensor("x", DType::F32, {uint64_t(1) << 40, uint64_t(1) << 40}, {}).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(w.add_tensor_lazy("x", DType::F32, {4}, nullptr).code(), StatusCode::invalid_argument);
  ASSERT_TRUE(w.add_tensor("x", DType::F32, {4}, b).is_ok());
  EXPECT_EQ(w.add_tensor("x", DType::F32, {4}, b).code(), StatusCode::invalid_argument);
  EXPECT_EQ(w.n_tensors(), 1u);

  Writer mixed;
  mixed.set("k", make_array(ValueType::INT32, {Value{int32_t(1)}, Value{uint32_t(2)}}));
  Status s = mixed.write(dir.file("mixed.gguf"));
  EXPECT_EQ(s.code(), StatusCode::invalid_argument);
  EXPECT_NE(s.message().find("'k'"), std::string::npos) << s.message();

  for (uint32_t bad : {0u, 3u, 48u}) {
    EXPECT_EQ(Writer(bad).write(dir.file("a.gguf")).code(), StatusCode::invalid_argument) << bad;
  }
  Writer wrong_type;
  wrong_type.set("general.alignment", uint64_t(32));
  EXPECT_EQ(wrong_type.write(dir.file("a.gguf")).code(), StatusCode::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.gguf")));

  EXPECT_EQ(Writer().write(dir.file("no/such/dir/x.gguf")).code(), StatusCode::io_error);
}

TEST(GgufWriter, FailedFillLeavesNoFile) {
  ScratchDir dir("w_fill");
  const std::string path = dir.file("out.gguf");
  Writer w;
  ASSERT_TRUE(w.add_tensor_lazy("boom", DType::F32, {4}, [](uint8_t*, uint64_t) {
                 return make_error(StatusCode::internal, "fill failed");
               }).is_ok());
  Status s = w.write(path);
  EXPECT_EQ(s.code(), StatusCode::internal);
  EXPECT_NE(s.message().find("boom"), std::string::npos) << s.message();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  // A failed rewrite keeps the previous file intact (atomic replace).
  Writer good;
  good.set("v", uint32_t(1));
  ASSERT_TRUE(good.write(path).is_ok());
  EXPECT_EQ(w.write(path).code(), StatusCode::internal);
  auto f = File::open(path);
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(f->get_u32("v").value(), 1u);
}

TEST(GgufValue, ToString) {
  EXPECT_EQ(Value{uint32_t(7)}.to_string(), "7");
  EXPECT_EQ(Value{int8_t(-3)}.to_string(), "-3");
  EXPECT_EQ(Value{true}.to_string(), "true");
  EXPECT_EQ(Value{0.5f}.to_string(), "0.5");
  EXPECT_EQ(Value{std::string("a\"b\n")}.to_string(), "\"a\\\"b\\n\"");
  std::vector<Value> items;
  for (int i = 0; i < 20; ++i) items.push_back(Value{int32_t(i)});
  EXPECT_EQ(make_array(ValueType::INT32, items).to_string(3), "[0, 1, 2, ... (20 int32 items)]");
  EXPECT_EQ(make_array(ValueType::INT32, {}).to_string(), "[]");
  EXPECT_STREQ(value_type_name(ValueType::FLOAT64), "float64");
}

}  // namespace
}  // namespace anvil::gguf
