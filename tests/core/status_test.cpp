#include <gtest/gtest.h>

#include "core/status.h"

namespace anvil {
namespace {

Expected<int> parse_positive(int v) {
  if (v <= 0) return make_error(StatusCode::invalid_argument, "value ", v, " is not positive");
  return v;
}

TEST(Status, OkAndErrorCarryCodeAndMessage) {
  EXPECT_TRUE(Status::ok().is_ok());
  Status s = make_error(StatusCode::corrupt_file, "tensor '", std::string("w"), "' at byte ", uint64_t(42));
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::corrupt_file);
  EXPECT_EQ(s.message(), "tensor 'w' at byte 42");
  EXPECT_EQ(s.to_string(), "corrupt_file: tensor 'w' at byte 42");
}

TEST(Expected, ValueOrStatus) {
  auto good = parse_positive(3);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(*good, 3);
  EXPECT_TRUE(good.status().is_ok());

  auto bad = parse_positive(-1);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.status().code(), StatusCode::invalid_argument);
  EXPECT_NE(bad.status().message().find("-1"), std::string::npos);
  EXPECT_THROW(bad.value(), Error);
  try {
    (void)bad.value();
  } catch (const Error& e) {
    EXPECT_EQ(e.status().code(), StatusCode::invalid_argument);
  }
}

TEST(Expected, OkStatusIsNotAValue) {
  Expected<int> e{Status::ok()};
  EXPECT_FALSE(e.has_value());
  EXPECT_EQ(e.status().code(), StatusCode::internal);
}

}  // namespace
}  // namespace anvil
