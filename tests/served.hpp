#pragma once
// A `pevledger serve` run by a test: started on a free port, stopped by SIGTERM (or SIGKILL when
// the test ends first).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pevledger::testing {

using json = nlohmann::json;

// A running `pevledger serve` and the port it listens on.
class served {
 public:
  // `extra`: more arguments, such as --operator-key FILE.
  explicit served(const std::string& db, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {PEVLEDGER_BIN, "serve", "--db", db, "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::execv(PEVLEDGER_BIN, argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    out_ = ::fdopen(out[0], "r");
    const std::string first = line();
    if (first.find("listening") == std::string::npos) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      throw std::runtime_error("pevledger serve did not start: '" + first + "'");
    }
    port_ = static_cast<std::uint16_t>(std::stoi(json::parse(first)["listening"].get<std::string>().substr(10)));
  }
  ~served() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) ::fclose(out_);
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  // SIGTERM, then the exit code and the summary it printed.
  std::pair<int, json> stop() {
    ::kill(pid_, SIGTERM);
    int raw = 0;
    ::waitpid(pid_, &raw, 0);
    pid_ = -1;
    const std::string summary = line();
    return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, json::parse(summary, nullptr, false)};
  }

 private:
  std::string line() {
    char buffer[4096];
    if (::fgets(buffer, sizeof buffer, out_) == nullptr) return "";
    return buffer;
  }
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  std::uint16_t port_ = 0;
};

}  // namespace pevledger::testing
