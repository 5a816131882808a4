#include "core/dtype.h"

#include <array>
#include <cctype>
#include <cstdlib>

namespace anvil {
namespace {

constexpr std::array kTraits = {
    DTypeTraits{DType::F32, "F32", 1, 4, false, true},
    DTypeTraits{DType::F16, "F16", 1, 2, false, true},
    DTypeTraits{DType::Q4_0, "Q4_0", 32, 18, true, true},
    DTypeTraits{DType::Q4_1, "Q4_1", 32, 20, true, true},
    DTypeTraits{DType::Q5_0, "Q5_0", 32, 22, true, true},
    DTypeTraits{DType::Q5_1, "Q5_1", 32, 24, true, true},
    DTypeTraits{DType::Q8_0, "Q8_0", 32, 34, true, true},
    DTypeTraits{DType::Q8_1, "Q8_1", 32, 36, true, false},
    DTypeTraits{DType::Q2_K, "Q2_K", 256, 84, true, false},
    DTypeTraits{DType::Q3_K, "Q3_K", 256, 110, true, false},
    DTypeTraits{DType::Q4_K, "Q4_K", 256, 144, true, true},
    DTypeTraits{DType::Q5_K, "Q5_K", 256, 176, true, true},
    DTypeTraits{DType::Q6_K, "Q6_K", 256, 210, true, true},
    DTypeTraits{DType::Q8_K, "Q8_K", 256, 292, true, true},
    DTypeTraits{DType::IQ2_XXS, "IQ2_XXS", 256, 66, true, false},
    DTypeTraits{DType::IQ2_XS, "IQ2_XS", 256, 74, true, false},
    DTypeTraits{DType::IQ3_XXS, "IQ3_XXS", 256, 98, true, false},
    DTypeTraits{DType::IQ1_S, "IQ1_S", 256, 50, true, false},
    DTypeTraits{DType::IQ4_NL, "IQ4_NL", 32, 18, true, false},
    DTypeTraits{DType::IQ3_S, "IQ3_S", 256, 110, true, false},
    DTypeTraits{DType::IQ2_S, "IQ2_S", 256, 82, true, false},
    DTypeTraits{DType::IQ4_XS, "IQ4_XS", 256, 136, true, false},
    DTypeTraits{DType::I8, "I8", 1, 1, false, false},
    DTypeTraits{DType::I16, "I16", 1, 2, false, false},
    DTypeTraits{DType::I32, "I32", 1, 4, false, false},
    DTypeTraits{DType::I64, "I64", 1, 8, false, false},
    DTypeTraits{DType::F64, "F64", 1, 8, false, false},
    DTypeTraits{DType::IQ1_M, "IQ1_M", 256, 56, true, false},
    DTypeTraits{DType::BF16, "BF16", 1, 2, false, true},
    DTypeTraits{DType::TQ1_0, "TQ1_0", 256, 54, true, false},
    DTypeTraits{DType::TQ2_0, "TQ2_0", 256, 66, true, false},
    DTypeTraits{DType::MXFP4, "MXFP4", 32, 17, true, false},
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower((unsigned char)a[i]) != std::tolower((unsigned char)b[i])) return false;
  return true;
}

}  // namespace

std::optional<DTypeTraits> dtype_traits(uint32_t id) {
  for (const auto& t : kTraits)
    if (uint32_t(t.type) == id) return t;
  return std::nullopt;
}

const DTypeTraits& traits(DType t) {
  for (const auto& tr : kTraits)
    if (tr.type == t) return tr;
  std::abort();  // DType values are only made from known ids
}

std::string_view dtype_name(DType t) { return traits(t).name; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& t : kTraits)
    if (iequals(t.name, name)) return t.type;
  return std::nullopt;
}

std::optional<uint64_t> row_bytes(DType t, uint64_t n) {
  const auto& tr = traits(t);
  if (n % tr.block_size != 0) return std::nullopt;
  const uint64_t blocks = n / tr.block_size;
  if (blocks != 0 && tr.type_size > UINT64_MAX / blocks) return std::nullopt;
  return blocks * tr.type_size;
}

}  // namespace anvil
