// Logging for translation units that cannot include spdlog (nvcc trips on fmt's consteval format
// strings): already formatted messages to the library's logger (core/log.h).
#pragma once

#include <string>

namespace anvil {

void log_warn(const std::string& message);
void log_debug(const std::string& message);

}  // namespace anvil
