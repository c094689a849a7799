// `neptun-api migrate`: creates the Neptun schema's enums and tables where they are missing,
// in one transaction, and leaves everything that exists alone (an existing Neptun database
// keeps its extra columns and tables). A run-once command, so it uses blocking libpq.
#pragma once

#include <string>
#include <vector>

namespace neptun::projects {

struct migrate_outcome {
    bool ok = false;
    std::vector<std::string> created;  // e.g. "type project_type", "table neptun_user"
    std::string error;                 // one line when !ok
};

migrate_outcome migrate(const std::string& conninfo);

}  // namespace neptun::projects
