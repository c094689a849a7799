// The program: reads the configuration, then serves (API workers, admin listener, signal
// handling and drain) or migrates. main() is a thin shell around run().
#pragma once

#include <map>
#include <string>
#include <vector>

namespace neptun::app {

// Returns the process exit code: 0 done, 1 failed at run time, 2 bad configuration.
int run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env);

}  // namespace neptun::app
