// Logging through spdlog. Library code logs to the "anvil" logger; embedders can silence or
// redirect it with set_log_level / spdlog's registry.
#pragma once

#include <spdlog/spdlog.h>

namespace anvil {

// The library's logger (created on first use, stderr, level from $ANVIL_LOG_LEVEL or "info").
spdlog::logger& log();

}  // namespace anvil
