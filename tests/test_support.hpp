#pragma once
// Helpers shared by the tests: temporary directories and running the pevledger binary.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
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


inline temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/pevledger-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

inline temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

namespace detail {
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace detail

inline command_result run_pevledger(const std::string& args, const std::string& stdin_text) {
  temp_dir io;
  write_file(io.file("stdin"), stdin_text);
  const std::string cmd = std::string(PEVLEDGER_BIN) + " " + args + " <" + io.file("stdin") + " >" +
                          io.file("stdout") + " 2>" + io.file("stderr");
  const int raw = std::system(cmd.c_str());
  command_result r;
  r.exit_code = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.out = detail::slurp(io.file("stdout"));
  r.err = detail::slurp(io.file("stderr"));
  return r;
}

}  // namespace pevledger::testing
