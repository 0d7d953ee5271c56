#include "portal/api.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/time.hpp"
#include "core/stream_name.hpp"
#include "pevledger/engine.hpp"
#include "portal/directory.hpp"
#include "portal/page.hpp"
#include "storage/event_log.hpp"
#include "storage/record.hpp"

namespace pevledger::portal {
namespace {

namespace fb = pevledger::schema;
using json = nlohmann::ordered_json;
using clock_type = std::chrono::steady_clock;

api_response answer(json body) {
  api_response r;
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

api_response error(unsigned code, std::string_view what, std::string_view message) {
  json j;
  j["error"] = what;
  j["message"] = message;
  api_response r = answer(std::move(j));
  r.status = code;
  r.challenge = code == 401;
  return r;
}

api_response forbidden() { return error(403, "forbidden", "this token may not read that"); }
api_response not_found() { return error(404, "not_found", "no such resource"); }

api_response from_engine(const result<std::string>& doc) {
  if (doc) {
    api_response r;
    r.body = doc.value();
    return r;
  }
  // Visibility was checked first, so what remains is a storage failure or a bad period.
  if (doc.error().code() == errc::usage) return error(400, "bad_request", doc.error().message());
  if (doc.error().code() == errc::unknown_account || doc.error().code() == errc::unknown_session) return not_found();
  return error(500, "storage_error", "the database could not be read");  // the cause may name files
}

// "%XX" escapes of one path segment or query value ('+' is a space in a query only); nullopt when
// malformed or holding a NUL or a control character (never a valid identifier).
std::optional<std::string> percent_decode(std::string_view text, bool query = false) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      unsigned v = 0;
      const auto [p, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, v, 16);
      if (ec != std::errc() || p != text.data() + i + 3) return std::nullopt;
      c = static_cast<char>(v);
      i += 2;
    } else if (c == '+' && query) {
      c = ' ';
    }
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    out.push_back(c);
  }
  return out;
}

struct request_target {
  std::vector<std::string> path;  // decoded segments
  std::vector<std::pair<std::string, std::string>> query;
  [[nodiscard]] std::optional<std::string> param(std::string_view key) const {
    for (const auto& [k, v] : query)
      if (k == key) return v;
    return std::nullopt;
  }
};

std::optional<request_target> parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/') return std::nullopt;
  request_target out;
  const auto question = target.find('?');
  std::string_view path = target.substr(0, question);
  if (question != std::string_view::npos) {
    std::string_view query = target.substr(question + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (pair.empty()) continue;
      const auto eq = pair.find('=');
      auto key = percent_decode(pair.substr(0, eq), true);
      auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
      if (!key || !value) return std::nullopt;
      out.query.emplace_back(std::move(*key), std::move(*value));
    }
  }
  path.remove_prefix(1);
  while (!path.empty()) {
    const auto slash = path.find('/');
    auto segment = percent_decode(path.substr(0, slash));
    if (!segment) return std::nullopt;
    out.path.push_back(std::move(*segment));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return out;
}

// A page of a list: `limit` (1 to page_limit_max) and `after` (a cursor this API returned: a
// position in the list, which only grows).
struct page_request {
  std::size_t limit = api::page_limit_default;
  std::optional<std::size_t> after;
};

std::optional<page_request> page_of(const request_target& t, bool position_cursor = true) {
  page_request p;
  auto number = [](const std::string& text) -> std::optional<std::size_t> {
    std::size_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
  };
  if (auto limit = t.param("limit")) {
    auto v = number(*limit);
    if (!v || *v == 0 || *v > api::page_limit_max) return std::nullopt;
    p.limit = *v;
  }
  if (auto after = t.param("after"); after && position_cursor) {
    auto v = number(*after);
    if (!v) return std::nullopt;
    p.after = *v;
  }
  return p;
}

api_response bad_page() {
  return error(400, "bad_request",
               "limit is 1 to " + std::to_string(api::page_limit_max) + "; after is a cursor this API returned");
}

// A month in a path, checked here so that the message names the API's parameter.
bool is_month(const std::string& text) { return text.size() == 7 && parse_month(text).has_value(); }

api_response bad_month() { return error(400, "bad_request", "the period must be YYYY-MM"); }

std::string_view premise_kind_name(fb::PremiseKind kind) {
  return kind == fb::PremiseKind::public_ ? "public" : "residential";
}

std::string day_text(std::int64_t days) {
  const civil_date d = civil_from_days(days);
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02d-%02d", d.year, d.month, d.day);
  return text;
}

json nullable(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

}  // namespace

struct api::impl {
  api_options options;
  std::unique_ptr<pevledger::engine> engine;
  std::unique_ptr<storage::event_log> log;
  directory dir;
  clock_type::time_point refreshed{};

  status refresh() {
    const auto now = clock_type::now();
    if (refreshed != clock_type::time_point{} && now - refreshed < options.refresh_after) return status::ok();
    refreshed = now;
    auto head = log->catch_up();
    if (!head) return head.error();
    if (head->value() != engine_head) {
      auto caught = engine->catch_up();
      if (!caught) return caught.error();
      engine_head = caught.value();
    }
    // Folded whole at open; after that a request folds what the writer added since the last one,
    // at most fold_records_max records.
    return dir.fold(*log);
  }
  std::uint64_t engine_head = 0;

  const principal* authenticate(std::string_view authorization) const {
    // RFC 6750: the scheme's name in any case, then the token.
    constexpr std::string_view scheme = "bearer ";
    if (authorization.size() <= scheme.size()) return nullptr;
    for (std::size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return nullptr;
    std::string_view token = authorization.substr(scheme.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    return token.empty() ? nullptr : dir.token_principal(token_sha256(token));
  }

  api_response route(const request_target& t, const principal& who);
  api_response account_view(const std::string& id);
  api_response usage(const std::string& id, const request_target& t);
  api_response sessions(const principal& who, const std::string& id, const request_target& t);
  api_response bills(const std::string& id);
  api_response session_view(const principal& who, const std::string& id);
  api_response intervals(const std::string& id, const request_target& t);
  api_response utility_accounts(const std::string& id, const request_target& t);
  api_response settlement(const std::string& id, const std::string& period);
  api_response report(const std::string& id, const std::string& period);
};

result<std::unique_ptr<api>> api::open(const std::string& db, api_options options) {
  auto p = std::make_unique<impl>();
  p->options = options;
  engine_options engine_opts;
  engine_opts.read_only = true;
  engine_opts.follow_writer = true;
  engine_opts.create_if_missing = false;
  auto e = engine::open(db, engine_opts);
  if (!e) return e.error();
  p->engine = std::move(e.value());
  storage::log_options log_opts;
  log_opts.access = storage::log_access::read_only;
  log_opts.follow_writer = true;
  auto log = storage::event_log::open(db, log_opts);
  if (!log) return log.error();
  p->log = std::move(log.value());
  p->engine_head = p->engine->log_size();
  // Whole before the first request: a token granted long ago must open what it opens.
  while (p->dir.folded() < p->log->last_seq().value()) PEV_RETURN_IF_ERROR(p->dir.fold(*p->log));
  return std::unique_ptr<api>(new api(std::move(p)));
}

api::api(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
api::~api() = default;

api_response api::handle(std::string_view method, std::string_view target, std::string_view authorization) {
  if (method != "GET") return error(405, "method_not_allowed", "this API only reads: GET");
  if (target.size() > target_bytes_max) return error(414, "uri_too_long", "the request target is too long");
  auto t = parse_target(target);
  if (!t) return error(400, "bad_request", "the request target is not a valid path and query");
  if (t->path.empty() || (t->path.size() == 1 && t->path[0] == "index.html")) {
    api_response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(selfcare_page());
    r.cacheable = true;
    return r;
  }
  if (t->path.size() < 3 || t->path[0] != "api" || t->path[1] != "v1") return not_found();
  // The cause goes nowhere near an unauthenticated caller: it may name files.
  if (status s = impl_->refresh(); !s.is_ok()) return error(500, "storage_error", "the database could not be read");
  if (authorization.empty()) return error(401, "unauthorized", "send Authorization: Bearer TOKEN");
  const principal* who = impl_->authenticate(authorization);
  if (who == nullptr) return error(401, "invalid_token", "the token is not one this utility issued, or was revoked");
  return impl_->route(*t, *who);
}

api_response api::impl::route(const request_target& t, const principal& who) {
  const auto& p = t.path;
  const std::size_t n = p.size();
  if (n == 3 && p[2] == "me") {
    json j;
    j["kind"] = who.is_utility() ? "utility" : "account";
    if (!who.is_utility()) j["account"] = who.account;
    j["utility"] = who.utility;
    return answer(std::move(j));
  }
  if (p[2] == "accounts" && n >= 4) {
    const std::string& id = p[3];
    if (!dir.may_read_account(who, id)) return forbidden();
    if (n == 4) return account_view(id);
    if (n == 5 && p[4] == "usage") return usage(id, t);
    if (n == 5 && p[4] == "sessions") return sessions(who, id, t);
    if (n == 5 && p[4] == "bills") return bills(id);
    if (n == 6 && p[4] == "bills") return is_month(p[5]) ? from_engine(engine->bill(id, p[5])) : bad_month();
    if (n == 5 && p[4] == "balance") return from_engine(engine->balance(id));
    return not_found();
  }
  if (p[2] == "sessions" && n >= 4) {
    if (!dir.may_read_session(who, p[3])) return forbidden();
    if (n == 4) return session_view(who, p[3]);
    if (n == 5 && p[4] == "intervals") return intervals(p[3], t);
    return not_found();
  }
  if (p[2] == "utilities" && n >= 5) {
    if (!who.is_utility() || who.utility != p[3]) return forbidden();
    if (n == 5 && p[4] == "accounts") return utility_accounts(p[3], t);
    if (n == 6 && p[4] == "settlements") return is_month(p[5]) ? settlement(p[3], p[5]) : bad_month();
    if (n == 6 && p[4] == "reports") return is_month(p[5]) ? report(p[3], p[5]) : bad_month();
    return not_found();
  }
  return not_found();
}

api_response api::impl::account_view(const std::string& id) {
  const account_entry* a = dir.account(id);
  if (a == nullptr) return not_found();
  auto balance = engine->balance(id);
  if (!balance) return from_engine(balance);
  const auto b = json::parse(balance.value());
  json j;
  j["account"] = id;
  j["utility"] = a->utility;
  j["customer"] = a->customer;
  j["kind"] = fb::EnumNameAccountKind(a->kind);
  j["balance_micro"] = b.at("balance_micro");
  j["reserved_micro"] = b.at("reserved_micro");
  const utility_entry* u = dir.utility(a->utility);
  j["timezone"] = u != nullptr ? u->timezone : "UTC";
  j["premises"] = json::array();
  for (const std::string& pid : a->premises) {
    const premise_entry* pr = dir.premise(pid);
    json x;
    x["premise"] = pid;
    x["kind"] = premise_kind_name(pr->kind);
    x["default_tariff"] = pr->default_tariff;
    x["guest_policy"] = fb::EnumNameGuestPolicy(pr->guest_policy);
    j["premises"].push_back(std::move(x));
  }
  j["pevs"] = json::array();
  std::vector<std::string> programs;
  for (const std::string& vin : a->pevs) {
    const pev_entry* pv = dir.pev(vin);
    json x;
    x["pev"] = vin;
    x["program"] = pv->tariff;
    x["home_premise"] = pv->home_premise;
    x["allow_roaming"] = pv->allow_roaming;
    j["pevs"].push_back(std::move(x));
    if (std::find(programs.begin(), programs.end(), pv->tariff) == programs.end()) programs.push_back(pv->tariff);
  }
  j["programs"] = programs;
  j["periods"] = json::array();
  for (auto it = a->periods.rbegin(); it != a->periods.rend(); ++it)
    j["periods"].push_back(month_period::from_index(it->first).to_string());
  return answer(std::move(j));
}

api_response api::impl::usage(const std::string& id, const request_target& t) {
  const account_entry* a = dir.account(id);
  if (a == nullptr) return not_found();
  const auto period_text = t.param("period");
  if (!period_text) return error(400, "bad_request", "usage needs ?period=YYYY-MM");
  if (!is_month(*period_text)) return bad_month();
  auto period = parse_month(*period_text);
  const std::int64_t first = days_from_civil({period->year, period->month, 1});
  const month_period next = period->next();
  const std::int64_t end = days_from_civil({next.year, next.month, 1});
  std::vector<std::string> windows;
  json days = json::array();
  for (std::int64_t d = first; d < end; ++d) {  // at most 31 days
    json day;
    day["date"] = day_text(d);
    std::int64_t wh = 0, amount = 0;
    json by_window = json::array();
    if (auto it = a->usage.find(d); it != a->usage.end()) {
      for (const auto& [window, total] : it->second) {
        if (std::find(windows.begin(), windows.end(), window) == windows.end()) windows.push_back(window);
        json w;
        w["window"] = window;
        w["wh"] = total.wh;
        w["amount_micro"] = total.amount_micro;
        by_window.push_back(std::move(w));
        wh += total.wh;
        amount += total.amount_micro;
      }
    }
    day["wh"] = wh;
    day["amount_micro"] = amount;
    day["windows"] = std::move(by_window);
    days.push_back(std::move(day));
  }
  json j;
  j["account"] = id;
  j["period"] = period->to_string();
  const utility_entry* u = dir.utility(a->utility);
  j["timezone"] = u != nullptr ? u->timezone : "UTC";
  j["windows"] = windows;
  j["days"] = std::move(days);
  return answer(std::move(j));
}

namespace {

// What of a session a principal may see: who paid and how much is the payer's (and its utility's)
// to know; what the premise was credited, the premise's account's. A host sees that a guest
// charged at its premise, and how much energy, but not who the guest is.
struct session_view_rights {
  bool payer = false;
  bool host = false;
};

session_view_rights rights_of(const directory& dir, const principal& who, const session_entry& ss) {
  const premise_entry* p = dir.premise(ss.premise);
  if (who.is_utility()) {  // a utility sees its own customers' part: the payer's, the host's
    const account_entry* payer = dir.account(ss.payer_account);
    return {payer != nullptr && payer->utility == who.utility, p != nullptr && p->utility == who.utility};
  }
  return {who.account == ss.payer_account, p != nullptr && who.account == p->account};
}

json session_summary(const directory& dir, const principal& who, const std::string& id, const session_entry& ss) {
  const session_view_rights may = rights_of(dir, who, ss);
  json x;
  x["session"] = id;
  x["premise"] = ss.premise;
  x["utility"] = ss.utility;
  x["began"] = format_timestamp(ss.began);
  x["ended"] = ss.ended ? json(format_timestamp(*ss.ended)) : json(nullptr);
  x["state"] = ss.ended ? "unplugged" : "open";
  x["payer_kind"] = ss.decided ? json(fb::EnumNamePayer(ss.payer)) : json(nullptr);
  x["payer_account"] = may.payer ? nullable(ss.payer_account) : json(nullptr);
  x["reason"] = ss.decided && ss.reason != fb::FallbackReason::none ? json(fb::EnumNameFallbackReason(ss.reason))
                                                                    : json(nullptr);
  x["pev"] = may.payer ? nullable(ss.pev) : json(nullptr);
  x["wh"] = ss.wh;
  x["amount_micro"] = may.payer ? json(ss.amount_micro()) : json(nullptr);
  x["credit_micro"] = may.host ? json(ss.credit_micro) : json(nullptr);
  return x;
}

// Newest first: positions count down from the end of an append-only list; the cursor is the
// position of the last item returned, so a page stays put while the list grows.
template <class Emit>
json page_down(std::size_t size, const page_request& page, Emit&& emit) {
  std::size_t next = std::min(page.after.value_or(size), size);
  std::size_t taken = 0;
  while (next > 0 && taken < page.limit) {
    --next;
    emit(next);
    ++taken;
  }
  return next > 0 ? json(std::to_string(next)) : json(nullptr);
}

}  // namespace

api_response api::impl::sessions(const principal& who, const std::string& id, const request_target& t) {
  const account_entry* a = dir.account(id);
  if (a == nullptr) return not_found();
  const auto state = t.param("state");
  if (state && *state != "open") return error(400, "bad_request", "state may only be open");
  json list = json::array();
  json next = nullptr;
  if (state) {  // every open session: a few at most, so no pages
    for (const std::string& sid : a->open_sessions) list.push_back(session_summary(dir, who, sid, *dir.session(sid)));
  } else {
    auto page = page_of(t);
    if (!page) return bad_page();
    next = page_down(a->sessions.size(), *page, [&](std::size_t i) {
      list.push_back(session_summary(dir, who, a->sessions[i], *dir.session(a->sessions[i])));
    });
  }
  json j;
  j["sessions"] = std::move(list);
  j["next"] = std::move(next);
  return answer(std::move(j));
}

api_response api::impl::bills(const std::string& id) {
  const account_entry* a = dir.account(id);
  if (a == nullptr) return not_found();
  json list = json::array();
  for (auto it = a->periods.rbegin(); it != a->periods.rend(); ++it) {  // one per month with lines
    auto doc = engine->bill(id, month_period::from_index(it->first).to_string());
    if (!doc) return from_engine(doc);
    const auto b = json::parse(doc.value());
    json x;
    x["period"] = b.at("period");
    x["status"] = b.at("status");
    x["total_micro"] = b.at("total_micro");
    x["total_cents"] = b.at("total_cents");
    x["lines"] = b.at("lines").size();
    list.push_back(std::move(x));
  }
  json j;
  j["bills"] = std::move(list);
  return answer(std::move(j));
}

api_response api::impl::session_view(const principal& who, const std::string& id) {
  auto doc = engine->session(id);
  if (!doc) return from_engine(doc);
  json j = json::parse(doc.value());
  const session_entry* ss = dir.session(id);
  const session_view_rights may = rights_of(dir, who, *ss);
  if (!may.payer) {  // the engine's report is the utility's view: keep the payer's part from others
    if (j.contains("payer") && j["payer"] != "main_meter") j["payer"] = nullptr;
    for (const char* field : {"pev", "tariff", "pev_total_wh", "card", "phone"})
      if (j.contains(field)) j[field] = nullptr;
    if (j.contains("grants")) j["grants"] = json::array();
    // A reconciliation compares the PEV's own total: the payer's to know.
    if (j.contains("anomaly_list")) {
      json kept = json::array();
      for (auto& a : j["anomaly_list"])
        if (a.value("kind", "") != "reconciliation") kept.push_back(std::move(a));
      if (j.contains("anomalies") && j["anomalies"].is_number_integer())
        j["anomalies"] = j["anomalies"].get<std::int64_t>() - static_cast<std::int64_t>(j["anomaly_list"].size() - kept.size());
      j["anomaly_list"] = std::move(kept);
    }
  }
  j["began"] = format_timestamp(ss->began);
  j["ended"] = ss->ended ? json(format_timestamp(*ss->ended)) : json(nullptr);
  j["live"] = !ss->ended;
  j["amount_micro"] = may.payer ? json(ss->amount_micro()) : json(nullptr);
  j["credit_micro"] = may.host ? json(ss->credit_micro) : json(nullptr);
  return answer(std::move(j));
}

api_response api::impl::intervals(const std::string& id, const request_target& t) {
  auto page = page_of(t, /*position_cursor=*/false);
  if (!page) return bad_page();
  struct reading {
    std::int64_t start, seconds, wh;
    std::optional<std::int64_t> register_wh;
  };
  std::vector<reading> readings;
  auto keep = [&](const fb::IntervalReading& r) {
    if (r.session()->string_view() == id) readings.push_back({r.start(), r.seconds(), r.wh(), r.register_wh()});
  };
  // A session's stream holds its own readings only: one per recorded interval.
  const status read = log->scan_stream(core::stream_of(core::stream_kind::session, id), 0, log->last_seq(),
                                       [&](const fb::Record& r) -> status {
                                         const fb::EventBody& body = *r.body_nested_root();
                                         if (const auto* one = body.event_as_IntervalRecorded()) keep(*one->reading());
                                         if (const auto* many = body.event_as_IntervalsRecorded())
                                           for (const fb::IntervalReading* x : *many->readings()) keep(*x);
                                         return status::ok();
                                       });
  if (!read.is_ok()) return error(500, "storage_error", "the database could not be read");
  std::stable_sort(readings.begin(), readings.end(), [](const reading& a, const reading& b) { return a.start < b.start; });
  // In start order (readings of one start in arrival order: a station's EUMDs may share one); the
  // cursor is "START.N", the start (UTC seconds) of the last one returned and how many of that start
  // were returned, so a reading that arrives late, with an earlier start, never shifts a later page.
  auto from = readings.begin();
  if (auto after = t.param("after")) {
    const auto dot = after->find('.');
    std::int64_t start = 0;
    std::size_t of_start = 0;
    const char* end = after->data() + after->size();
    if (dot == std::string::npos ||
        std::from_chars(after->data(), after->data() + dot, start).ptr != after->data() + dot ||
        std::from_chars(after->data() + dot + 1, end, of_start).ptr != end || dot == 0 || dot + 1 == after->size())
      return bad_page();
    from = std::lower_bound(readings.begin(), readings.end(), start,
                            [](const reading& r, std::int64_t s) { return r.start < s; });
    for (std::size_t k = 0; k < of_start && from != readings.end() && from->start == start; ++k) ++from;
  }
  const auto to = from + static_cast<std::ptrdiff_t>(std::min<std::size_t>(page->limit, readings.end() - from));
  json list = json::array();
  for (auto r = from; r != to; ++r) {
    json x;
    x["start"] = format_timestamp(unix_seconds(r->start));
    x["seconds"] = r->seconds;
    x["wh"] = r->wh;
    x["register_wh"] = r->register_wh ? json(*r->register_wh) : json(nullptr);
    list.push_back(std::move(x));
  }
  json j;
  j["intervals"] = std::move(list);
  json next = nullptr;
  if (to != readings.end() && to != from) {
    const std::int64_t last = (to - 1)->start;
    const auto first_of_last = std::lower_bound(readings.begin(), to, last,
                                                [](const reading& r, std::int64_t s) { return r.start < s; });
    next = std::to_string(last) + "." + std::to_string(to - first_of_last);
  }
  j["next"] = std::move(next);
  return answer(std::move(j));
}

api_response api::impl::utility_accounts(const std::string& id, const request_target& t) {
  const utility_entry* u = dir.utility(id);
  if (u == nullptr) return not_found();
  auto page = page_of(t);
  if (!page) return bad_page();
  json list = json::array();
  json next = page_down(u->accounts.size(), *page, [&](std::size_t i) {
    const account_entry* a = dir.account(u->accounts[i]);
    json x;
    x["account"] = u->accounts[i];
    x["customer"] = a->customer;
    x["kind"] = fb::EnumNameAccountKind(a->kind);
    x["sessions"] = a->sessions.size();
    list.push_back(std::move(x));
  });
  json j;
  j["accounts"] = std::move(list);
  j["next"] = std::move(next);
  return answer(std::move(j));
}

api_response api::impl::settlement(const std::string& id, const std::string& period) {
  auto doc = engine->settlement(period);
  if (!doc) return from_engine(doc);
  json entries = json::array();
  for (auto& e : json::parse(doc.value()))
    if (e.at("home_utility") == id || e.at("roaming_utility") == id) entries.push_back(std::move(e));
  json j;
  j["utility"] = id;
  j["period"] = period;
  j["entries"] = std::move(entries);
  return answer(std::move(j));
}

api_response api::impl::report(const std::string& id, const std::string& period) {
  auto doc = engine->period_report(period);
  if (!doc) return from_engine(doc);
  json whole = json::parse(doc.value());
  json j;
  j["period"] = whole.at("period");
  j["utility"] = nullptr;
  for (auto& u : whole.at("utilities"))
    if (u.at("utility") == id) j["utility"] = std::move(u);
  if (j["utility"].is_null()) return not_found();
  return answer(std::move(j));
}

result<std::string> new_access_token() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    return status(errc::io_error, "the system's random source failed");
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string token = "pvl_";
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      token.push_back(alphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) token.push_back(alphabet[(acc << (6 - bits)) & 63]);
  return token;
}

result<bool> token_gives_access(const std::string& db, const std::string& hash, const principal& who) {
  storage::log_options options;
  options.access = storage::log_access::read_only;
  auto log = storage::event_log::open(db, options);
  if (!log) return log.error();
  const std::string stream = who.is_utility() ? core::stream_of(core::stream_kind::utility, who.utility)
                                              : core::stream_of(core::stream_kind::account, who.account);
  bool granted = false;  // the last grant or revoke of this hash on the stream says
  PEV_RETURN_IF_ERROR(log.value()->scan_stream(stream, 0, log.value()->last_seq(), [&](const fb::Record& r) -> status {
    const fb::EventBody& body = *r.body_nested_root();
    if (const auto* g = body.event_as_AccessGranted(); g != nullptr && g->token_sha256()->string_view() == hash)
      granted = true;
    if (const auto* v = body.event_as_AccessRevoked(); v != nullptr && v->token_sha256()->string_view() == hash)
      granted = false;
    return status::ok();
  }));
  return granted;
}

std::string token_sha256(std::string_view token) {
  return storage::to_hex(storage::sha256({reinterpret_cast<const std::uint8_t*>(token.data()), token.size()}));
}

}  // namespace pevledger::portal
