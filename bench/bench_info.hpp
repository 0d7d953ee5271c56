#pragma once
// What every benchmark records beside its figures: the machine, the commit and the time it ran.

#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace pevledger::bench {

inline std::string command_output(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

inline nlohmann::ordered_json machine_info() {
  nlohmann::ordered_json m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      m["cpu"] = line.substr(line.find(':') + 2);
      break;
    }
  m["cores"] = sysconf(_SC_NPROCESSORS_ONLN);
  m["memory_bytes"] = static_cast<long long>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  utsname u{};
  if (uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release;
  return m;
}

inline std::string commit() {
  const std::string c = command_output("git -C '" PEVLEDGER_SOURCE_DIR "' rev-parse --short HEAD 2>/dev/null");
  const std::string dirty =
      command_output("git -C '" PEVLEDGER_SOURCE_DIR "' status --porcelain --untracked-files=no 2>/dev/null");
  return c.empty() ? "unknown" : c + (dirty.empty() ? "" : "-dirty");
}

inline nlohmann::ordered_json header(const std::string& name) {
  nlohmann::ordered_json j;
  j["bench"] = name;
  j["commit"] = commit();
  j["machine"] = machine_info();
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  j["ran_at"] = buf;
  return j;
}

// The command that writes the seeded fleet month of `fleet_gen` (next to the running benchmark)
// to its standard output.
inline std::string fleet_command(const char* argv0, int premises_per_utility) {
  const std::string dir = std::string(argv0).substr(0, std::string(argv0).rfind('/') + 1);
  return "'" + dir + "fleet_gen' --seed 11 --premises-per-utility " + std::to_string(premises_per_utility);
}

// Writes the seeded fleet month to `path`.
inline bool generate_fleet(const char* argv0, int premises_per_utility, const std::string& path) {
  return std::system((fleet_command(argv0, premises_per_utility) + " > '" + path + "'").c_str()) == 0;
}

// The process's peak resident memory (VmHWM), in bytes.
inline long long peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace pevledger::bench
