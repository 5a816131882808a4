// Typed accessors: exact integer conversions, float widths, arrays, and the errors they give.
#include <gtest/gtest.h>

#include <limits>

#include "gguf/file.h"
#include "gguf/writer.h"
#include "test_util.h"

namespace anvil::gguf {
namespace {

using test::make_array;

class GgufAccessors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::ScratchDir("accessors");
    Writer w;
    w.set("general.architecture", "llama");
    w.set("u8", Value{uint8_t(200)});
    w.set("i8.neg", Value{int8_t(-5)});
    w.set("i16", Value{int16_t(1234)});
    w.set("u32", Value{uint32_t(4000000000u)});
    w.set("i32.neg", Value{int32_t(-1)});
    w.set("u64.small", Value{uint64_t(77)});
    w.set("u64.big", Value{uint64_t(1) << 40});
    w.set("u64.max", Value{std::numeric_limits<uint64_t>::max()});
    w.set("i64.neg", Value{int64_t(-9)});
    w.set("f32", Value{0.125f});
    w.set("f64", Value{0.1});
    w.set("f64.huge", Value{1e300});
    w.set("bool", Value{true});
    w.set("str", Value{std::string("text")});
    w.set("a.str", make_array(ValueType::STRING, {Value{std::string("p")}, Value{std::string("q")}}));
    w.set("a.u8", make_array(ValueType::UINT8, {Value{uint8_t(1)}, Value{uint8_t(255)}}));
    w.set("a.i16", make_array(ValueType::INT16, {Value{int16_t(-3)}}));
    w.set("a.u64.max", make_array(ValueType::UINT64, {Value{std::numeric_limits<uint64_t>::max()}}));
    w.set("a.f32", make_array(ValueType::FLOAT32, {Value{1.5f}, Value{-2.0f}}));
    w.set("a.f64", make_array(ValueType::FLOAT64, {Value{0.5}, Value{1e-3}}));
    w.set("a.f64.huge", make_array(ValueType::FLOAT64, {Value{1e300}}));
    w.set("a.nested", make_array(ValueType::ARRAY, {make_array(ValueType::INT32, {})}));
    const std::string path = dir_->file("acc.gguf");
    throw_if_error(w.write(path));
    file_ = new File(File::open(path).value());
  }
  static void TearDownTestSuite() {
    delete file_;
    delete dir_;
  }
  static const File& f() { return *file_; }

  static void expect_error(const Status& s, StatusCode code, std::initializer_list<const char*> parts) {
    EXPECT_EQ(s.code(), code) << s.to_string();
    for (const char* p : parts) EXPECT_NE(s.message().find(p), std::string::npos) << s.message() << " / " << p;
  }

  static inline test::ScratchDir* dir_ = nullptr;
  static inline File* file_ = nullptr;
};

TEST_F(GgufAccessors, Integers) {
  EXPECT_EQ(f().get_u32("u8").value(), 200u);
  EXPECT_EQ(f().get_u32("i16").value(), 1234u);
  EXPECT_EQ(f().get_u32("u32").value(), 4000000000u);
  EXPECT_EQ(f().get_u32("u64.small").value(), 77u);
  EXPECT_EQ(f().get_i64("i8.neg").value(), -5);
  EXPECT_EQ(f().get_i64("u32").value(), 4000000000);
  EXPECT_EQ(f().get_i64("u64.big").value(), int64_t(1) << 40);
  EXPECT_EQ(f().get_u64("u64.max").value(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(f().get_u64("u8").value(), 200u);
  EXPECT_EQ(f().architecture().value(), "llama");

  expect_error(f().get_u32("i32.neg").status(), StatusCode::invalid_argument, {"'i32.neg'", "uint32", "int32", "-1"});
  expect_error(f().get_u32("u64.big").status(), StatusCode::invalid_argument, {"'u64.big'", "uint32", "uint64"});
  expect_error(f().get_u64("i64.neg").status(), StatusCode::invalid_argument, {"'i64.neg'", "uint64", "int64"});
  expect_error(f().get_i64("u64.max").status(), StatusCode::invalid_argument, {"'u64.max'", "int64", "uint64"});
  expect_error(f().get_u32("f32").status(), StatusCode::invalid_argument, {"'f32'", "wanted uint32", "got float32"});
  expect_error(f().get_i64("bool").status(), StatusCode::invalid_argument, {"'bool'", "int64", "bool"});
  expect_error(f().get_u32("str").status(), StatusCode::invalid_argument, {"'str'", "uint32", "string"});
}

TEST_F(GgufAccessors, FloatsBoolsStrings) {
  EXPECT_EQ(f().get_f32("f32").value(), 0.125f);
  EXPECT_EQ(f().get_f32("f64").value(), 0.1f);
  EXPECT_TRUE(f().get_bool("bool").value());
  EXPECT_EQ(f().get_string("str").value(), "text");
  expect_error(f().get_f32("u32").status(), StatusCode::invalid_argument, {"'u32'", "float32", "uint32"});
  expect_error(f().get_f32("f64.huge").status(), StatusCode::invalid_argument, {"'f64.huge'", "float32"});
  expect_error(f().get_bool("u8").status(), StatusCode::invalid_argument, {"'u8'", "bool", "uint8"});
  expect_error(f().get_string("a.str").status(), StatusCode::invalid_argument,
               {"'a.str'", "wanted string", "array of string"});
}

TEST_F(GgufAccessors, Arrays) {
  EXPECT_EQ(f().get_string_array("a.str").value(), (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(f().get_int_array("a.u8").value(), (std::vector<int64_t>{1, 255}));
  EXPECT_EQ(f().get_int_array("a.i16").value(), (std::vector<int64_t>{-3}));
  EXPECT_EQ(f().get_float_array("a.f32").value(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(f().get_float_array("a.f64").value(), (std::vector<float>{0.5f, 1e-3f}));
  expect_error(f().get_int_array("a.u64.max").status(), StatusCode::invalid_argument, {"'a.u64.max'", "int64"});
  expect_error(f().get_float_array("a.f64.huge").status(), StatusCode::invalid_argument, {"'a.f64.huge'"});
  expect_error(f().get_int_array("a.f32").status(), StatusCode::invalid_argument,
               {"'a.f32'", "array of integers", "array of float32"});
  expect_error(f().get_string_array("a.u8").status(), StatusCode::invalid_argument,
               {"'a.u8'", "array of string", "array of uint8"});
  expect_error(f().get_float_array("str").status(), StatusCode::invalid_argument, {"'str'", "string"});
  expect_error(f().get_int_array("a.nested").status(), StatusCode::invalid_argument, {"array of array"});
}

TEST_F(GgufAccessors, MissingKeys) {
  for (const Status& s : {f().get_string("nope").status(), f().get_u32("nope").status(),
                          f().get_i64("nope").status(), f().get_u64("nope").status(),
                          f().get_f32("nope").status(), f().get_bool("nope").status(),
                          f().get_string_array("nope").status(), f().get_int_array("nope").status(),
                          f().get_float_array("nope").status()}) {
    expect_error(s, StatusCode::not_found, {"'nope'"});
  }
  EXPECT_FALSE(f().has("nope"));
  EXPECT_TRUE(f().has("u8"));
}

TEST(GgufOpen, FileSystemErrors) {
  test::ScratchDir dir("open_errors");
  EXPECT_EQ(File::open(dir.file("missing.gguf")).status().code(), StatusCode::not_found);
  EXPECT_EQ(File::open(dir.path().string()).status().code(), StatusCode::io_error);
  test::write_file(dir.file("empty.gguf"), {});
  Status s = File::open(dir.file("empty.gguf")).status();
  EXPECT_EQ(s.code(), StatusCode::corrupt_file);
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.message();
}

TEST(GgufOpen, MoveKeepsMapping) {
  test::ScratchDir dir("move");
  Writer w;
  const auto bytes = test::random_bytes(64, 3);
  throw_if_error(w.add_tensor("t", DType::F32, {16}, bytes));
  throw_if_error(w.write(dir.file("m.gguf")));
  auto opened = File::open(dir.file("m.gguf"));
  ASSERT_TRUE(opened);
  File a = std::move(opened.value());
  File b = std::move(a);
  const TensorInfo* t = b.find_tensor("t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::memcmp(b.tensor_data(*t), bytes.data(), bytes.size()), 0);
  EXPECT_EQ(b.path(), dir.file("m.gguf"));
}

}  // namespace
}  // namespace anvil::gguf
