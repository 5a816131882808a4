// The kernel registry with a toy op (y = 2x) whose candidates count their runs: measured choice,
// cached (no second measurement), persisted to disk and reloaded, ANVIL_FORCE_KERNEL,
// ANVIL_TUNE=off, and a fast but wrong candidate rejected.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/registry.h"

namespace anvil {
namespace {

struct ScaleArgs {
  const float* x;
  float* y;
  int64_t n;
};

struct Counters {
  int reference = 0, fast = 0, wrong = 0, slow = 0, unsupported = 0;
};

void spin_for_us(int us) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  while (std::chrono::steady_clock::now() < end) {
  }
}

// reference: correct, 400 us; fast: correct, ~0 us; slow: correct, 1500 us; wrong: fastest but
// off by 5%; unsupported: would be fastest, never supports.
std::unique_ptr<KernelRegistry<ScaleArgs>> make_registry(Counters& c) {
  auto r = std::make_unique<KernelRegistry<ScaleArgs>>("test_scale", [] { return TuningContext{"test-device", "none"}; });
  auto scale = [](const ScaleArgs& a, float f) {
    for (int64_t i = 0; i < a.n; ++i) a.y[i] = f * a.x[i];
  };
  auto yes = [](const ScaleArgs&) { return true; };
  r->add({"reference", 1e-6, yes, [&c, scale](const ScaleArgs& a) { ++c.reference; spin_for_us(400); scale(a, 2.f); return Status::ok(); }});
  r->add({"wrong", 1e-2, yes, [&c, scale](const ScaleArgs& a) { ++c.wrong; scale(a, 2.1f); return Status::ok(); }});
  r->add({"slow", 1e-6, yes, [&c, scale](const ScaleArgs& a) { ++c.slow; spin_for_us(1500); scale(a, 2.f); return Status::ok(); }});
  r->add({"fast", 1e-6, yes, [&c, scale](const ScaleArgs& a) { ++c.fast; spin_for_us(20); scale(a, 2.f); return Status::ok(); }});
  r->add({"unsupported", 1e-6, [](const ScaleArgs&) { return false; },
          [&c](const ScaleArgs&) { ++c.unsupported; return Status::ok(); }});
  return r;
}

class ScaleTrial : public TuningTrial {
 public:
  explicit ScaleTrial(KernelRegistry<ScaleArgs>& r) : r_(r), x_(64), y_(64) {}
  void refresh(uint64_t seed) override {
    for (size_t i = 0; i < x_.size(); ++i) x_[i] = float((seed * 31 + i * 7) % 17) - 8.f;
    std::fill(y_.begin(), y_.end(), NAN);
  }
  Status run(size_t c) override { return r_.candidates()[c].run({x_.data(), y_.data(), int64_t(x_.size())}); }
  double error() override {
    std::vector<float> ref(x_.size());
    for (size_t i = 0; i < x_.size(); ++i) ref[i] = 2.f * x_[i];
    return max_row_relative_error(y_.data(), y_.size(), ref.data(), ref.size(), 1, int64_t(ref.size()));
  }

 private:
  KernelRegistry<ScaleArgs>& r_;
  std::vector<float> x_, y_;
};

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("anvil-registry-test-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".json"))
                .string();
    std::filesystem::remove(path_);
    setenv("ANVIL_TUNE_CACHE", path_.c_str(), 1);
    unsetenv("ANVIL_FORCE_KERNEL");
    unsetenv("ANVIL_TUNE");
  }
  void TearDown() override {
    std::filesystem::remove(path_);
    unsetenv("ANVIL_TUNE_CACHE");
    unsetenv("ANVIL_FORCE_KERNEL");
    unsetenv("ANVIL_TUNE");
  }
  const KernelRegistry<ScaleArgs>::Candidate* choose(KernelRegistry<ScaleArgs>& r, const std::string& shape) {
    float x = 1, y = 0;
    return r.choose(shape, {&x, &y, 1}, "reference", [&r] { return std::make_unique<ScaleTrial>(r); });
  }
  std::string path_;
};

TEST_F(RegistryTest, MeasuresOnceRejectsWrongAndPicksFastest) {
  Counters c;
  auto r = make_registry(c);
  const auto* chosen = choose(*r, "n64");
  ASSERT_NE(chosen, nullptr);
  EXPECT_EQ(chosen->name, "fast");
  EXPECT_EQ(r->tuner().measurements(), 1);
  EXPECT_EQ(c.unsupported, 0);
  EXPECT_GE(c.fast, 6);  // warm-up + at least 5 timed runs
  EXPECT_EQ(c.wrong, 1);  // rejected after its checked warm-up run, never timed
  bool saw_wrong = false;
  for (const auto& t : r->tuner().last_timings())
    if (t.name == "wrong") {
      saw_wrong = true;
      EXPECT_FALSE(t.accepted);
      EXPECT_NEAR(t.error, 0.05, 1e-3);
    }
  EXPECT_TRUE(saw_wrong);

  const Counters before = c;
  EXPECT_EQ(choose(*r, "n64")->name, "fast");  // cached in memory: nothing runs
  EXPECT_EQ(r->tuner().measurements(), 1);
  EXPECT_EQ(c.fast, before.fast);
  EXPECT_EQ(c.reference, before.reference);

  choose(*r, "n128");  // a new shape is measured
  EXPECT_EQ(r->tuner().measurements(), 2);
}

TEST_F(RegistryTest, PersistsToDiskAndReloads) {
  Counters c1;
  {
    auto r = make_registry(c1);
    EXPECT_EQ(choose(*r, "n64")->name, "fast");
  }
  ASSERT_TRUE(std::filesystem::exists(path_));
  std::ifstream f(path_);
  const auto j = nlohmann::json::parse(f);
  ASSERT_TRUE(j.contains("entries"));
  ASSERT_EQ(j["entries"].size(), 1u);
  const auto& e = j["entries"].begin().value();
  EXPECT_EQ(e["op"], "test_scale");
  EXPECT_EQ(e["shape"], "n64");
  EXPECT_EQ(e["candidate"], "fast");
  EXPECT_FALSE(e["timings"]["wrong"]["accepted"].get<bool>());

  Counters c2;
  auto r2 = make_registry(c2);  // a new process, as far as the registry knows
  EXPECT_EQ(choose(*r2, "n64")->name, "fast");
  EXPECT_EQ(r2->tuner().measurements(), 0);
  EXPECT_EQ(c2.fast + c2.reference + c2.slow + c2.wrong, 0);

  // A different device hashes to a different key: the entry does not apply.
  Counters c3;
  auto r3 = std::make_unique<KernelRegistry<ScaleArgs>>("test_scale", [] { return TuningContext{"other-device", "none"}; });
  const auto same_candidates = make_registry(c3);
  for (const auto& cand : same_candidates->candidates()) r3->add(cand);
  choose(*r3, "n64");
  EXPECT_EQ(r3->tuner().measurements(), 1);
}

TEST_F(RegistryTest, ForceKernelWins) {
  Counters c;
  auto r = make_registry(c);
  setenv("ANVIL_FORCE_KERNEL", "other_op:x,test_scale:slow", 1);
  EXPECT_EQ(choose(*r, "n64")->name, "slow");
  EXPECT_EQ(r->tuner().measurements(), 0);
  // Forcing a candidate that does not support the shape falls back to the usual path.
  setenv("ANVIL_FORCE_KERNEL", "test_scale:unsupported", 1);
  EXPECT_EQ(choose(*r, "n64")->name, "fast");
  EXPECT_EQ(c.unsupported, 0);
}

TEST_F(RegistryTest, TuneOffUsesHeuristic) {
  Counters c;
  auto r = make_registry(c);
  setenv("ANVIL_TUNE", "off", 1);
  EXPECT_EQ(choose(*r, "n64")->name, "reference");
  EXPECT_EQ(r->tuner().measurements(), 0);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(RegistryTest, NoSupportedCandidateGivesNull) {
  KernelRegistry<ScaleArgs> r("test_none", [] { return TuningContext{}; });
  r.add({"never", 1e-6, [](const ScaleArgs&) { return false; }, [](const ScaleArgs&) { return Status::ok(); }});
  float x = 1, y = 0;
  EXPECT_EQ(r.choose("n1", {&x, &y, 1}, "never", [] { return std::unique_ptr<TuningTrial>(); }), nullptr);
}

TEST(RowRelativeError, MeasuresPerRow) {
  const float ref[4] = {3, 4, 1, 0};
  const float out[4] = {3, 4, 1.1f, 0};
  EXPECT_NEAR(max_row_relative_error(out, 2, ref, 2, 2, 2), 0.1, 1e-6);  // row 1: 0.1 / 1
  const float bad[4] = {3, 4, NAN, 0};
  EXPECT_TRUE(std::isinf(max_row_relative_error(bad, 2, ref, 2, 2, 2)));
}

}  // namespace
}  // namespace anvil
