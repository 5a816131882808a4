#include "core/log.h"
#include "core/log_text.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace anvil {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::get("anvil");
    if (!l) l = spdlog::stderr_color_mt("anvil");
    l->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
    const char* lvl = std::getenv("ANVIL_LOG_LEVEL");
    l->set_level(lvl ? spdlog::level::from_str(lvl) : spdlog::level::info);
    return l;
  }();
  return *logger;
}

void log_warn(const std::string& message) { log().warn("{}", message); }
void log_debug(const std::string& message) { log().debug("{}", message); }

}  // namespace anvil
