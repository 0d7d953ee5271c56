// Typed commands spelled as the JSON lines of SPEC section 6, and typed results read from the
// projections' JSON: the typed API goes through the same schema checks and the same documents as
// the text one, so the two cannot drift apart.

#include "engine/typed_commands.hpp"

#include <nlohmann/json.hpp>

#include "base/json_writer.hpp"
#include "base/time.hpp"

namespace pevledger {
namespace {

std::string time_text(timestamp t) { return format_timestamp(unix_seconds(t.time_since_epoch().count())); }

std::string month_text(std::chrono::year_month m) {
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02u", static_cast<int>(m.year()), static_cast<unsigned>(m.month()));
  return text;
}

std::string clock_text(std::chrono::minutes m) {
  char text[48];
  std::snprintf(text, sizeof text, "%02lld:%02lld", static_cast<long long>(m.count() / 60),
                static_cast<long long>(m.count() % 60));
  return text;
}

const char* weekday_text(std::chrono::weekday d) {
  static constexpr const char* names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  return d.ok() ? names[d.c_encoding()] : "?";
}

// Writes the fields of one command body; `w` is inside the line's object.
class body_writer {
 public:
  explicit body_writer(json_writer& w) : w_(w) {}

  void operator()(const commands::utility_register& c) {
    type("utility.register").text("utility", c.utility).text("timezone", c.timezone);
    maybe("comm_timeout_s", c.comm_timeout_s);
    maybe("prepaid_reserve", c.prepaid_reserve_micro);
  }
  void operator()(const commands::tariff_publish& c) {
    static constexpr const char* kinds[] = {"flat", "tou", "rtp"};
    type("tariff.publish").text("utility", c.utility).text("tariff", c.tariff);
    text("kind", kinds[static_cast<int>(c.kind)]).number("price", c.price_micro_per_kwh);
    if (!c.windows.empty()) {
      w_.key("periods").begin_array();
      for (const tou_window& p : c.windows) {
        w_.begin_object();
        text("name", p.name);
        w_.key("days").begin_array();
        for (auto d : p.days) w_.string(weekday_text(d));
        w_.end_array();
        text("from", clock_text(p.from)).text("to", clock_text(p.to)).number("price", p.price_micro_per_kwh);
        w_.end_object();
      }
      w_.end_array();
    }
    maybe("cpp_price", c.cpp_price_micro_per_kwh);
  }
  void operator()(const commands::price_publish& c) {
    type("price.publish").text("utility", c.utility).text("tariff", c.tariff).time("hour", c.hour);
    number("price", c.price_micro_per_kwh);
  }
  void operator()(const commands::cpp_declare& c) {
    type("cpp.declare").text("utility", c.utility).time("start", c.start).time("end", c.end);
  }
  void operator()(const commands::dlc_declare& c) {
    type("dlc.declare").text("utility", c.utility).time("start", c.start).time("end", c.end);
  }
  void operator()(const commands::account_open& c) {
    type("account.open").text("utility", c.utility).text("account", c.account).text("customer", c.customer);
    text("kind", c.kind == account_kind::prepaid ? "prepaid" : "postpaid");
  }
  void operator()(const commands::account_topup& c) {
    type("account.topup").text("account", c.account).number("amount", c.amount_micro);
  }
  void operator()(const commands::premise_register& c) {
    type("premise.register").text("utility", c.utility).text("premise", c.premise).text("account", c.account);
    text("default_tariff", c.default_tariff);
    text("guest_policy", c.guests == guest_policy::guest_pays ? "guest_pays" : "host_pays");
    text("kind", c.kind == premise_kind::public_station ? "public" : "residential");
  }
  void operator()(const commands::station_boot& c) { type("station.boot").text("premise", c.premise); }
  void operator()(const commands::station_activate& c) { type("station.activate").text("premise", c.premise); }
  void operator()(const commands::device_commission& c) {
    type("device.commission").text("premise", c.premise).text("device", c.device);
    text("kind", c.kind == device_kind::esci ? "esci" : "eumd");
    maybe("interval_s", c.interval_s);
  }
  void operator()(const commands::device_configure& c) {
    type("device.configure").text("device", c.device).number("interval_s", c.interval_s);
  }
  void operator()(const commands::pev_enroll& c) {
    type("pev.enroll").text("account", c.account).text("pev", c.pev).text("tariff", c.tariff);
    text("home_premise", c.home_premise);
    w_.key("allow_roaming").boolean(c.allow_roaming);
  }
  void operator()(const commands::pev_setup& c) {
    type("pev.setup").text("pev", c.pev).text("premise", c.premise).text("esci", c.esci).text("eumd", c.eumd);
  }
  void operator()(const commands::session_plug& c) {
    type("session.plug").text("session", c.session).text("premise", c.premise);
    if (c.eumd) text("eumd", *c.eumd);
  }
  void operator()(const commands::session_bind& c) { type("session.bind").text("session", c.session).text("pev", c.pev); }
  void operator()(const commands::session_start& c) {
    type("session.start").text("session", c.session).text("premise", c.premise);
    if (c.phone) {
      text("phone", *c.phone);
      return;
    }
    text("card", c.card);
    w_.key("online").boolean(c.online);
  }
  void operator()(const commands::energy_request& c) {
    type("energy.request").text("session", c.session).number("wh", c.wh).time("depart", c.depart);
  }
  void operator()(const commands::meter_interval& c) {
    type("meter.interval").text("device", c.device).text("session", c.session).time("start", c.start);
    number("seconds", c.seconds).number("wh", c.wh);
    maybe("register_wh", c.register_wh);
  }
  void operator()(const commands::pev_total& c) { type("pev.total").text("session", c.session).number("wh", c.wh); }
  void operator()(const commands::session_unplug& c) { type("session.unplug").text("session", c.session); }
  void operator()(const commands::session_timeout& c) { type("session.timeout").text("session", c.session); }
  void operator()(const commands::access_grant& c) { access("access.grant", c.token_sha256, c.account, c.utility); }
  void operator()(const commands::access_revoke& c) { access("access.revoke", c.token_sha256, c.account, c.utility); }
  void operator()(const commands::card_assign& c) {
    type("card.assign").text("card", c.card).text("account", c.account);
  }
  void operator()(const commands::card_revoke& c) { type("card.revoke").text("card", c.card); }
  void operator()(const commands::phone_assign& c) {
    type("phone.assign").text("phone", c.phone).text("account", c.account);
  }
  void operator()(const commands::phone_revoke& c) { type("phone.revoke").text("phone", c.phone); }
  void operator()(const commands::whitelist_push& c) {
    type("whitelist.push").text("premise", c.premise).number("version", c.version);
    w_.key("cards").begin_array();
    for (const auto& card : c.cards) w_.string(card);
    w_.end_array();
  }
  void operator()(const commands::bill_run& c) {
    type("bill.run").text("utility", c.utility).text("period", month_text(c.period));
  }
  void operator()(const commands::settlement_run& c) { type("settlement.run").text("period", month_text(c.period)); }

 private:
  body_writer& type(std::string_view t) { return text("type", t); }
  body_writer& text(std::string_view key, std::string_view value) {
    w_.key(key).string(value);
    return *this;
  }
  body_writer& number(std::string_view key, std::int64_t value) {
    w_.key(key).number(value);
    return *this;
  }
  body_writer& time(std::string_view key, timestamp t) { return text(key, time_text(t)); }
  void maybe(std::string_view key, const std::optional<std::int64_t>& value) {
    if (value) number(key, *value);
  }
  void access(std::string_view t, std::string_view hash, const std::optional<std::string>& account,
              const std::optional<std::string>& utility) {
    type(t).text("token_sha256", hash);
    if (account) text("account", *account);
    if (utility) text("utility", *utility);
  }
  json_writer& w_;
};

std::optional<std::chrono::year_month> month_of(const nlohmann::json& j) {
  if (!j.is_string()) return std::nullopt;
  auto m = parse_month(j.get<std::string>());
  if (!m) return std::nullopt;
  return std::chrono::year(m->year) / std::chrono::month(static_cast<unsigned>(m->month));
}

}  // namespace

std::string to_json_line(const command& c) {
  json_writer w(256);
  w.begin_object();
  w.key("id").string(c.id);
  w.key("at").string(time_text(c.at));
  std::visit(body_writer(w), c.body);
  w.end_object();
  return w.take();
}

namespace engine_detail {

// The documents are the engine's own: a field missing or of another type is a bug, not input.
result<bill> bill_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return status(errc::corruption, "a bill document is not JSON");
  try {
    bill b;
    b.account = j.at("account").get<std::string>();
    b.utility = j.at("utility").get<std::string>();
    b.period = month_of(j.at("period")).value_or(std::chrono::year_month{});
    b.issued = j.at("status").get<std::string>() == "issued";
    for (const auto& l : j.at("lines")) {
      bill_line line;
      line.session = l.at("session").get<std::string>();
      line.kind = l.at("kind").get<std::string>();
      line.tariff = l.at("tariff").get<std::string>();
      line.window = l.at("window").get<std::string>();
      line.wh = l.at("wh").get<std::int64_t>();
      line.amount_micro = l.at("amount_micro").get<std::int64_t>();
      if (l.contains("adjusts") && l["adjusts"].is_string()) line.adjusts = l["adjusts"].get<std::string>();
      if (l.contains("original_period")) line.original_period = month_of(l["original_period"]);
      b.lines.push_back(std::move(line));
    }
    b.total_micro = j.at("total_micro").get<std::int64_t>();
    b.total_cents = j.at("total_cents").get<std::int64_t>();
    return b;
  } catch (const nlohmann::json::exception& e) {
    return status(errc::corruption, std::string("a bill document lacks a field: ") + e.what());
  }
}

result<balance> balance_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return status(errc::corruption, "a balance document is not JSON");
  try {
    return balance{j.at("account").get<std::string>(), j.at("balance_micro").get<std::int64_t>(),
                   j.at("reserved_micro").get<std::int64_t>()};
  } catch (const nlohmann::json::exception& e) {
    return status(errc::corruption, std::string("a balance document lacks a field: ") + e.what());
  }
}

result<std::vector<settlement_entry>> settlement_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) return status(errc::corruption, "a settlement document is not a JSON list");
  try {
    std::vector<settlement_entry> out;
    for (const auto& e : j)
      out.push_back({e.at("home_utility").get<std::string>(), e.at("roaming_utility").get<std::string>(),
                     e.at("wh").get<std::int64_t>(), e.at("amount_micro").get<std::int64_t>(), e.at("net").get<bool>()});
    return out;
  } catch (const nlohmann::json::exception& e) {
    return status(errc::corruption, std::string("a settlement document lacks a field: ") + e.what());
  }
}

}  // namespace engine_detail
}  // namespace pevledger
