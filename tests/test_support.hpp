#pragma once
// Helpers shared by the tests: temporary directories and running the pevledger binary.

#include <string>

namespace pevledger::testing {

// A fresh directory under $TMPDIR, removed with everything in it when the object goes.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct command_result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `pevledger` with `args` (already shell-quoted as needed), feeding `stdin_text` if given.
command_result run_pevledger(const std::string& args, const std::string& stdin_text = "");

void write_file(const std::string& path, const std::string& text);

}  // namespace pevledger::testing
