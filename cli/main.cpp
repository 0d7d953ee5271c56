// The pevledger command-line tool: argument parsing and output only; the work is the engine's.
//
// Exit codes: 0 success; 1 the thing asked for does not exist (unknown account, session, ...);
// 2 usage or storage error; 3 `ingest` refused at least one line, or `replay --verify` / `verify`
// found that the log or a projection does not match.

#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/text_output.hpp"
#include "pevledger/engine.hpp"
#include "replay/checkpoint.hpp"
#include "replay/replay.hpp"

namespace {

using pevledger::errc;

constexpr int exit_ok = 0;
constexpr int exit_not_found = 1;
constexpr int exit_usage = 2;
constexpr int exit_refused = 3;

int fail(const pevledger::status& s) {
  std::cerr << "pevledger: " << s.describe() << '\n';
  switch (s.code()) {
    case errc::unknown_account:
    case errc::unknown_session:
    case errc::unknown_utility:
      return exit_not_found;
    default:
      return exit_usage;
  }
}

std::unique_ptr<pevledger::engine> open_engine(const std::string& db, int& code, bool create = false,
                                               std::size_t resident_max = pevledger::engine_options{}.resident_entities_max) {
  if (!create && !std::filesystem::exists(db)) {
    std::cerr << "pevledger: no database at '" << db << "'\n";
    code = exit_usage;
    return nullptr;
  }
  pevledger::engine_options options;
  options.create_if_missing = create;
  options.resident_entities_max = resident_max;
  auto e = pevledger::engine::open(db, options);
  if (!e) {
    code = fail(e.error());
    return nullptr;
  }
  return std::move(e.value());
}

int run_ingest(const std::string& db, const std::string& file, std::size_t resident_max) {
  int code = exit_ok;
  auto engine = open_engine(db, code, /*create=*/true, resident_max);
  if (!engine) return code;
  std::ifstream file_in;
  std::istream* in = &std::cin;
  if (file != "-") {
    file_in.open(file, std::ios::binary);
    if (!file_in) {
      std::cerr << "pevledger: cannot open '" << file << "'\n";
      return exit_usage;
    }
    in = &file_in;
  }
  auto summary = engine->ingest(*in, [](const pevledger::line_refusal& r) {
    nlohmann::ordered_json j;
    j["line"] = r.line;
    j["id"] = r.id ? nlohmann::ordered_json(*r.id) : nlohmann::ordered_json(nullptr);
    j["error"] = std::string(pevledger::to_string(r.error));
    j["message"] = r.message;
    std::cerr << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  });
  if (!summary) return fail(summary.error());
  nlohmann::ordered_json j;
  j["accepted"] = summary->accepted;
  j["duplicates"] = summary->duplicates;
  j["refused"] = summary->refused;
  std::cout << j.dump() << std::endl;
  return summary->refused > 0 ? exit_refused : exit_ok;
}

// Runs a query that returns one JSON document, printed as JSON or as text for people.
int run_query(const std::string& db, const std::string& format,
              const std::function<pevledger::result<std::string>(pevledger::engine&)>& query,
              const std::function<std::string(const std::string&)>& as_text) {
  int code = exit_ok;
  auto engine = open_engine(db, code);
  if (!engine) return code;
  auto doc = query(*engine);
  if (!doc) return fail(doc.error());
  std::cout << (format == "json" ? doc.value() : as_text(doc.value())) << std::endl;
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  // cin gets a buffer of its own: the ingest reads whatever has arrived, a chunk at a time.
  std::ios::sync_with_stdio(false);
  CLI::App app{"pevledger: settlement core for plug-in electric vehicle charging"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("pevledger ") + PEVLEDGER_VERSION + " (log format pevledger-log-3)");
  app.footer(
      "Exit codes: 0 success; 1 the account or session asked for does not exist; 2 usage or storage\n"
      "error; 3 ingest refused a line, or replay --verify / verify found a mismatch.\n"
      "The database defaults to ./pevledger.db. See README.md and docs/auditing.md.");
  std::string db = "pevledger.db";
  std::string format = "text";
  auto add_db = [&](CLI::App* sub) {
    sub->add_option("--db", db, "database directory (created by ingest when missing)")->capture_default_str();
  };
  auto add_format = [&](CLI::App* sub) {
    sub->add_option("--format", format, "text for people, json for programs")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();
  };

  std::string file;
  auto* ingest = app.add_subcommand("ingest", "apply JSON command lines (FILE, or - for standard input)");
  add_db(ingest);
  ingest->add_option("FILE", file, "command file, or - for standard input")->required();
  std::size_t resident_max = pevledger::engine_options{}.resident_entities_max;
  ingest->add_option("--resident-entities", resident_max,
                     "entities kept in memory between group commits; the rest wait in the log")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  std::string account, period, session;
  auto* bill = app.add_subcommand("bill", "an account's bill for a period: issued, or a preview before bill.run");
  add_db(bill);
  add_format(bill);
  bill->add_option("--account", account, "account id")->required();
  bill->add_option("--period", period, "billing month, YYYY-MM, in the utility's zone")->required();

  auto* balance = app.add_subcommand("balance", "an account's balance and open reservations");
  add_db(balance);
  add_format(balance);
  balance->add_option("--account", account, "account id")->required();

  auto* settlement = app.add_subcommand("settlement", "the roaming settlement statement of a period");
  add_db(settlement);
  add_format(settlement);
  settlement->add_option("--period", period, "YYYY-MM")->required();

  auto* session_cmd = app.add_subcommand("session", "a charging session's report");
  add_db(session_cmd);
  add_format(session_cmd);
  session_cmd->add_option("--session", session, "session id")->required();

  auto* report = app.add_subcommand("report", "a period at a glance: bill totals per utility and the settlement");
  add_db(report);
  add_format(report);
  report->add_option("--period", period, "YYYY-MM")->required();

  bool raw = false;
  auto* export_cmd = app.add_subcommand("export", "every event as JSON lines, in log order");
  add_db(export_cmd);
  export_cmd->add_flag("--raw", raw, "add each record's stored bytes (base64) and its hash field's offset");

  std::string until;
  bool verify = false;
  auto* replay = app.add_subcommand("replay", "rebuild every projection from the log alone");
  add_db(replay);
  add_format(replay);
  replay->add_option("--until", until, "stop after this sequence number, or at this time (YYYY-MM-DDTHH:MM:SSZ)");
  replay->add_flag("--verify", verify, "check the hash chain and compare with the stored projections");
  bool from_snapshots = false;
  std::size_t replay_threads = 0;
  replay->add_option("--threads", replay_threads,
                     "threads: one reads, the others verify hashes and apply; 0: one more than the cores (the digest is the same)")
      ->capture_default_str();
  replay->add_flag("--from-snapshots", from_snapshots,
                   "start each entity from its newest snapshot and apply only the events after it");

  std::string key, checkpoint_file, pubkey, out_file;
  auto* checkpoint = app.add_subcommand("checkpoint", "sign the log's current head with an Ed25519 key");
  add_db(checkpoint);
  checkpoint->add_option("--key", key, "Ed25519 private key, PEM")->required();
  checkpoint->add_option("--out", out_file, "write the checkpoint here instead of standard output");

  auto* verify_cmd = app.add_subcommand("verify", "prove that the log extends a signed checkpoint unchanged");
  add_db(verify_cmd);
  verify_cmd->add_option("--checkpoint", checkpoint_file, "checkpoint file")->required();
  verify_cmd->add_option("--pubkey", pubkey, "Ed25519 public key, PEM")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return exit_usage;
  }

  if (*ingest) return run_ingest(db, file, resident_max);
  if (*bill)
    return run_query(db, format, [&](pevledger::engine& e) { return e.bill(account, period); },
                     pevledger::cli::bill_text);
  if (*balance)
    return run_query(db, format, [&](pevledger::engine& e) { return e.balance(account); },
                     pevledger::cli::balance_text);
  if (*settlement)
    return run_query(db, format, [&](pevledger::engine& e) { return e.settlement(period); },
                     pevledger::cli::settlement_text);
  if (*session_cmd)
    return run_query(db, format, [&](pevledger::engine& e) { return e.session(session); },
                     pevledger::cli::session_text);
  if (*report)
    return run_query(db, format, [&](pevledger::engine& e) { return e.period_report(period); },
                     pevledger::cli::report_text);
  if (*export_cmd) {
    int code = exit_ok;
    auto engine = open_engine(db, code);
    if (!engine) return code;
    if (auto s = engine->export_events(std::cout, raw); !s.is_ok()) return fail(s);
    return exit_ok;
  }
  if (*checkpoint) {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    auto text = pevledger::replay::make_checkpoint(db, key, pevledger::unix_seconds(now.count()));
    if (!text) return fail(text.error());
    if (out_file.empty()) {
      std::cout << text.value();
    } else {
      std::ofstream out(out_file, std::ios::binary);
      out << text.value();
      if (!out) {
        std::cerr << "pevledger: cannot write '" << out_file << "'\n";
        return exit_usage;
      }
    }
    return exit_ok;
  }
  if (*verify_cmd) {
    std::ifstream in(checkpoint_file, std::ios::binary);
    if (!in) {
      std::cerr << "pevledger: cannot read '" << checkpoint_file << "'\n";
      return exit_usage;
    }
    std::stringstream text;
    text << in.rdbuf();
    auto outcome = pevledger::replay::verify_checkpoint(db, text.str(), pubkey);
    if (!outcome) return fail(outcome.error());
    (outcome->ok ? std::cout : std::cerr) << (outcome->ok ? "verified: " : "NOT verified: ") << outcome->message
                                          << std::endl;
    return outcome->ok ? exit_ok : exit_refused;
  }
  if (*replay) {
    auto report = pevledger::replay::run(db, until, verify, from_snapshots, replay_threads);
    if (!report) return fail(report.error());
    std::cout << (format == "json" ? report->json : report->text) << std::endl;
    return report->ok ? exit_ok : exit_refused;
  }
  return exit_usage;
}
