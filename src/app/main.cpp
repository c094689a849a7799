// neptun-api: the Neptun project-update API server. See README.md and docs/.
#include <map>
#include <string>
#include <vector>

#include "neptun/app/app.hpp"

extern char** environ;

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::map<std::string, std::string> env;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos && kv.starts_with("NEPTUN_"))
            env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
    }
    return neptun::app::run(args, env);
}
