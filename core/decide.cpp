#include "core/decide.hpp"

#include <algorithm>

#include "core/event_sink.hpp"
#include "core/rating.hpp"
#include "core/settlement.hpp"
#include "core/stream_name.hpp"
#include "core/vin.hpp"
#include "schema/interval_batch_generated.h"
#include "base/limits.hpp"
#include "base/money.hpp"

namespace pevledger::core {
namespace {

namespace fb = pevledger::schema;
using fb::Event;

std::string s(const flatbuffers::String* str) { return str == nullptr ? std::string() : str->str(); }

status refuse(errc code, std::string message) { return {code, std::move(message)}; }


template <class Map>
const typename Map::mapped_type* find(const Map& map, const std::string& key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

template <class State>
const State* find(const entity_table<State>& table, const std::string& key) {
  return table.find(key);
}


unix_seconds ts(const flatbuffers::String* text) {
  auto t = parse_timestamp(text->string_view());
  PEV_ASSERT(t.has_value());  // the parser checked every timestamp field
  return t.value();
}

std::int32_t month_of(const flatbuffers::String* text) {
  auto m = parse_month(text->string_view());
  PEV_ASSERT(m.has_value());
  return m->index();
}

// ---------------------------------------------------------------------------------------------
// Booking priced intervals as bill lines (SPEC sections 1, 3 and 5).

// Lines a command has booked but the state does not hold yet (a bill run totals them).
using pending_lines = std::map<std::pair<std::string, std::int32_t>, std::map<line_key, line_total>>;

struct booking {
  const ledger_state& state;
  event_sink& sink;
  pending_lines* pending = nullptr;
};

// The first period after `period` that `utility` has not billed.
std::int32_t first_unbilled_after(const utility_state& utility, std::int32_t period) {
  std::int32_t p = period + 1;
  while (utility.billed_periods.count(p) != 0) ++p;  // bounded by the number of billed periods
  return p;
}

std::int32_t first_unsettled_from(const ledger_state& state, std::int32_t period) {
  std::int32_t p = period;
  while (state.clearinghouse.settled_periods.count(p) != 0) ++p;  // bounded by the number of settled periods
  return p;
}

struct line_spec {
  std::string account;
  fb::LineKind kind = fb::LineKind::charge;
  std::string tariff;
  std::string window;
  std::int64_t wh = 0;
  std::int64_t amount_micro = 0;
  std::string counterpart_utility;  // set on roaming lines
  bool settles = false;             // a roaming credit: counts in a settlement
};

// `posted`: the session is unplugged already, so the line posts to the balance as it is booked.
void book_line(booking& b, const std::string& session, bool posted, unix_seconds start, const line_spec& spec) {
  const account_state* account = &b.state.accounts.at(spec.account);
  const utility_state* utility = find(b.state.utilities, account->utility);
  PEV_ASSERT(utility != nullptr);
  const std::int32_t natural = to_local(zone_of(*utility), start).month.index();
  const bool adjustment = utility->billed_periods.count(natural) != 0;
  const std::int32_t period = adjustment ? first_unbilled_after(*utility, natural) : natural;
  line_key key{session, adjustment ? fb::LineKind::adjustment : spec.kind, spec.tariff, spec.window,
               adjustment ? spec.kind : fb::LineKind::charge, adjustment ? natural : 0};
  std::string settlement_period;
  if (spec.settles)
    settlement_period = month_period::from_index(first_unsettled_from(b.state, period)).to_string();
  b.sink.emit(stream_of(stream_kind::account, spec.account), Event::LineBooked, [&](auto& fbb) {
    return fb::CreateLineBookedDirect(
        fbb, spec.account.c_str(), account->utility.c_str(), month_period::from_index(period).to_string().c_str(),
        session.c_str(), key.kind, key.adjusts,
        adjustment ? month_period::from_index(natural).to_string().c_str() : nullptr, spec.tariff.c_str(),
        spec.window.c_str(), spec.wh, spec.amount_micro, start.value(),
        spec.counterpart_utility.empty() ? nullptr : spec.counterpart_utility.c_str(),
        settlement_period.empty() ? nullptr : settlement_period.c_str(), posted);
  });
  if (spec.settles)
    b.sink.emit(std::string(stream_kind::clearinghouse), Event::RoamingCreditCounted, [&](auto& fbb) {
      // The home utility (the counterpart of the host's credit) owes what the host credited.
      return fb::CreateRoamingCreditCountedDirect(fbb, settlement_period.c_str(), spec.counterpart_utility.c_str(),
                                                  account->utility.c_str(), spec.wh, -spec.amount_micro);
    });
  if (b.pending != nullptr) {
    line_total& t = (*b.pending)[{spec.account, period}][key];
    t.wh += spec.wh;
    t.amount_micro += spec.amount_micro;
  }
}

struct priced_amount {
  std::int64_t amount_micro;
  std::string window;
};

priced_amount price(const ledger_state& state, const std::string& utility_id, const std::string& tariff_id,
                    const session_reading& r) {
  const utility_state* utility = find(state.utilities, utility_id);
  PEV_ASSERT(utility != nullptr);
  const tariff_state* tariff = find(utility->tariffs, tariff_id);
  PEV_ASSERT(tariff != nullptr);
  const rated_price rated = price_interval(*utility, *tariff, unix_seconds(r.start));
  return {interval_charge(energy_wh(r.wh), rated.price).value(), rated.window};
}

// Books one reading of a decided session: who pays is in `d`.
void book_reading(booking& b, const std::string& session_id, const session_state& session,
                  const session_decision& d, const session_reading& r) {
  const premise_state* premise = &b.state.premises.at(session.premise);
  const std::int64_t wh = r.wh;
  const unix_seconds start(r.start);
  switch (d.payer) {
    case fb::Payer::main_meter:
      book_line(b, session_id, session.unplugged, start, {premise->account, fb::LineKind::main_meter, premise->default_tariff, "", wh, 0});
      return;
    case fb::Payer::pev_account: {
      const priced_amount charge = price(b.state, d.tariff_utility, d.tariff, r);
      const priced_amount credit = price(b.state, session.utility, d.credit_tariff, r);
      book_line(b, session_id, session.unplugged, start,
                {d.payer_account, fb::LineKind::charge, d.tariff, charge.window, wh, charge.amount_micro,
                 d.roaming ? session.utility : std::string()});
      book_line(b, session_id, session.unplugged, start,
                {d.credit_account, fb::LineKind::credit, d.credit_tariff, credit.window, wh, -credit.amount_micro,
                 d.roaming ? d.payer_utility : std::string(), d.roaming});
      return;
    }
    case fb::Payer::card_account: {
      const priced_amount charge = price(b.state, d.tariff_utility, d.tariff, r);
      book_line(b, session_id, session.unplugged, start,
                {d.payer_account, fb::LineKind::charge, d.tariff, charge.window, wh, charge.amount_micro});
      return;
    }
    case fb::Payer::station_operator: {
      const priced_amount charge = price(b.state, d.tariff_utility, d.tariff, r);
      book_line(b, session_id, session.unplugged, start,
                {premise->account, fb::LineKind::uncollectible, d.tariff, charge.window, wh, charge.amount_micro});
      return;
    }
  }
}

// `undecided_at`: the utility whose undecided sessions list it, empty when it was decided as it began.
void emit_decision(event_sink& sink, const std::string& session_id, const session_decision& d,
                   const std::string& undecided_at) {
  sink.emit(stream_of(stream_kind::session, session_id), Event::SessionDecided, [&](auto& fbb) {
    // Strings by their length, in the order CreateSessionDecidedDirect makes them (the same bytes):
    // the VIN is free text and may hold a NUL, where a C string would end.
    auto opt = [&](const std::string& v) { return v.empty() ? flatbuffers::Offset<flatbuffers::String>() : fbb.CreateString(v); };
    const auto session = fbb.CreateString(session_id);
    const auto pev = opt(d.pev);
    const auto payer_account = opt(d.payer_account);
    const auto payer_utility = opt(d.payer_utility);
    const auto tariff = opt(d.tariff);
    const auto tariff_utility = opt(d.tariff_utility);
    const auto credit_account = opt(d.credit_account);
    const auto credit_tariff = opt(d.credit_tariff);
    return fb::CreateSessionDecided(fbb, session, d.payer, d.reason, pev, payer_account, payer_utility, tariff,
                                    tariff_utility, credit_account, credit_tariff, d.roaming, d.reserved_micro);
  });
  if (d.reserved_micro > 0)
    sink.emit(stream_of(stream_kind::account, d.payer_account), Event::ReservationHeld, [&](auto& fbb) {
      return fb::CreateReservationHeldDirect(fbb, d.payer_account.c_str(), session_id.c_str(), d.reserved_micro);
    });
  if (!undecided_at.empty())
    sink.emit(stream_of(stream_kind::utility, undecided_at), Event::UndecidedSessionRemoved, [&](auto& fbb) {
      return fb::CreateUndecidedSessionRemovedDirect(fbb, undecided_at.c_str(), session_id.c_str());
    });
}

void emit_undecided(event_sink& sink, const std::string& session_id, const std::string& utility) {
  sink.emit(stream_of(stream_kind::utility, utility), Event::UndecidedSessionAdded, [&](auto& fbb) {
    return fb::CreateUndecidedSessionAddedDirect(fbb, utility.c_str(), session_id.c_str());
  });
}

// Decides a session and books what it held back.
void decide_and_book(booking& b, const std::string& session_id, const session_state& session,
                     const session_decision& d) {
  emit_decision(b.sink, session_id, d, session.utility);
  for (const std::int64_t start : session.held) {
    const session_reading* r = session.reading_at(start);
    PEV_ASSERT(r != nullptr);  // apply keeps a reading for every start it holds back
    book_reading(b, session_id, session, d, *r);
  }
}

session_decision main_meter(const premise_state& premise, fb::FallbackReason reason, std::string pev = {}) {
  session_decision d;
  d.payer = fb::Payer::main_meter;
  d.reason = reason;
  d.pev = std::move(pev);
  d.tariff = premise.default_tariff;
  return d;
}

// The who-pays table of SPEC section 3 for a residential session bound to `vin` at `at`.
session_decision decide_residential(const ledger_state& state, const session_state& session, const std::string& vin,
                                    unix_seconds at) {
  const premise_state& premise = state.premises.at(session.premise);
  const utility_state& host = state.utilities.at(session.utility);
  if (session.eumd.empty()) return main_meter(premise, fb::FallbackReason::no_eumd, vin);
  if (at.value() - session.began.value() > host.comm_timeout_s)
    return main_meter(premise, fb::FallbackReason::bind_timeout, vin);
  if (!is_valid_vin(vin)) return main_meter(premise, fb::FallbackReason::invalid_vin, vin);
  const vin_registration* reg = find(state.registrations, vin);
  const pev_state* pev = find(state.pevs, vin);
  if (reg == nullptr || pev == nullptr) return main_meter(premise, fb::FallbackReason::unknown_vin, vin);
  const bool roaming = reg->home_utility != session.utility;
  if (roaming) {
    if (!pev->allow_roaming) return main_meter(premise, fb::FallbackReason::roaming_not_allowed, vin);
  } else if (pev->home_premise != session.premise) {
    if (premise.guest_policy == fb::GuestPolicy::host_pays) return main_meter(premise, fb::FallbackReason::host_pays, vin);
    if (!pev->allow_roaming) return main_meter(premise, fb::FallbackReason::roaming_not_allowed, vin);
  }
  const account_state& payer = state.accounts.at(pev->account);
  std::int64_t reserve = 0;
  if (payer.kind == fb::AccountKind::prepaid) {
    reserve = state.utilities.at(payer.utility).prepaid_reserve;
    if (payer.available_micro() < reserve) return main_meter(premise, fb::FallbackReason::insufficient_balance, vin);
  }
  session_decision d;
  d.payer = fb::Payer::pev_account;
  d.pev = vin;
  d.payer_account = pev->account;
  d.payer_utility = payer.utility;
  d.tariff = pev->tariff;
  d.tariff_utility = pev->utility;
  d.credit_account = premise.account;
  d.credit_tariff = premise.default_tariff;
  d.roaming = roaming;
  d.reserved_micro = reserve;
  return d;
}

// A residential session never bound: decided at unplug or by a run past its bind deadline.
session_decision decide_unbound(const ledger_state& state, const session_state& session, unix_seconds at) {
  const premise_state& premise = state.premises.at(session.premise);
  if (session.eumd.empty()) return main_meter(premise, fb::FallbackReason::no_eumd);
  const utility_state& host = state.utilities.at(session.utility);
  const bool timed_out = at.value() - session.began.value() > host.comm_timeout_s;
  return main_meter(premise, timed_out ? fb::FallbackReason::bind_timeout : fb::FallbackReason::no_bind);
}

// The card's account if the card was valid at `t` at a station of `station_utility`.
std::optional<std::string> card_valid_at(const ledger_state& state, const std::string& card_id,
                                         const std::string& station_utility, unix_seconds t) {
  const card_state* card = find(state.cards, card_id);
  if (card == nullptr) return std::nullopt;
  for (const card_assignment& a : card->history) {
    if (a.assigned_at > t || (a.revoked_at && *a.revoked_at <= t)) continue;
    const account_state* account = find(state.accounts, a.account);
    if (account != nullptr && account->utility == station_utility) return a.account;
  }
  return std::nullopt;
}

// Accounting of an offline public session (SPEC section 3): the card as of the session's start.
session_decision decide_offline(const ledger_state& state, const session_state& session) {
  const premise_state& station = state.premises.at(session.premise);
  session_decision d;
  d.tariff = station.default_tariff;
  d.tariff_utility = session.utility;
  if (auto account = card_valid_at(state, session.card, session.utility, session.began)) {
    d.payer = fb::Payer::card_account;
    d.payer_account = *account;
    d.payer_utility = session.utility;
  } else {
    d.payer = fb::Payer::station_operator;
    d.reason = fb::FallbackReason::card_invalid;
    d.payer_account = station.account;
    d.payer_utility = session.utility;
  }
  return d;
}

// Sessions a bill run (of `utility`, or of every utility when empty) or a settlement run decides.
void decide_overdue_sessions(booking& b, const std::string& utility_filter, unix_seconds at) {
  std::vector<std::string> ids;
  for (const auto& [uid, u] : b.state.utilities) {
    if (!utility_filter.empty() && uid != utility_filter) continue;
    for (const std::string& sid : u.undecided_sessions) ids.push_back(sid);
  }
  std::sort(ids.begin(), ids.end());  // deterministic order whatever the hash map does
  for (const std::string& sid : ids) {
    const session_state& session = b.state.sessions.at(sid);
    PEV_ASSERT(!session.decision.has_value());
    if (session.is_public) {
      if (at > session.began) decide_and_book(b, sid, session, decide_offline(b.state, session));
      continue;
    }
    const std::int64_t timeout = b.state.utilities.at(session.utility).comm_timeout_s;
    if (at.value() - session.began.value() > timeout)
      decide_and_book(b, sid, session, decide_unbound(b.state, session, at));
  }
}

// ---------------------------------------------------------------------------------------------
// One function per command type.

struct context {
  const ledger_state& state;
  const schema::command& cmd;
  event_sink sink;
  decision out;
};

status utility_register(context& c) {
  const auto* m = c.cmd.as<fb::UtilityRegister>();
  const std::string id = s(m->utility());
  if (c.state.utilities.count(id) != 0) return refuse(errc::utility_exists, "utility '" + id + "' exists");
  auto zone = c.state.zones_looked_up.find(m->timezone()->string_view());
  if (zone == c.state.zones_looked_up.end())
    return refuse(errc::invalid_field, "field 'timezone': unknown time zone '" +
                                           std::string(m->timezone()->string_view().substr(0, 64)) + "'");
  c.sink.emit(stream_of(stream_kind::utility, id), Event::UtilityRegistered, [&](auto& fbb) {
    std::vector<fb::ZoneTransition> table;
    table.reserve(zone->second->transitions().size());
    for (const auto& t : zone->second->transitions()) table.emplace_back(t.at, t.offset_s);
    return fb::CreateUtilityRegisteredDirect(fbb, id.c_str(), m->timezone()->c_str(), m->comm_timeout_s(),
                                             m->prepaid_reserve(), &table);
  });
  return status::ok();
}

status tariff_publish(context& c) {
  const auto* m = c.cmd.as<fb::TariffPublish>();
  const std::string uid = s(m->utility()), tid = s(m->tariff());
  const utility_state* u = find(c.state.utilities, uid);
  if (u == nullptr) return refuse(errc::unknown_utility, "unknown utility '" + uid + "'");
  if (m->periods() != nullptr && m->kind() != fb::TariffKind::tou)
    return refuse(errc::invalid_field, "field 'periods' is only for tou tariffs");
  std::vector<tou_window> windows;
  if (m->periods() != nullptr) {
    for (const fb::TouPeriod* p : *m->periods()) {
      const int from = parse_clock(p->from()->string_view()).value();
      const int to = parse_clock(p->to()->string_view()).value();
      if (from >= to)
        return refuse(errc::invalid_field, "window '" + s(p->name()) + "': from must be before to (write an "
                                           "overnight window as two)");
      if (p->days()->size() == 0) return refuse(errc::invalid_field, "window '" + s(p->name()) + "' has no days");
      std::uint8_t mask = 0;
      for (auto day : *p->days()) mask |= static_cast<std::uint8_t>(1u << static_cast<unsigned>(day));
      windows.push_back({s(p->name()), mask, from, to, p->price()});
    }
  }
  const tariff_state* existing = find(u->tariffs, tid);
  const auto version = static_cast<std::uint32_t>(existing == nullptr ? 1 : existing->versions.size() + 1);
  c.sink.emit(stream_of(stream_kind::utility, uid), Event::TariffPublished, [&](auto& fbb) {
    std::vector<flatbuffers::Offset<fb::TouWindow>> ws;
    for (const auto& w : windows)
      ws.push_back(fb::CreateTouWindowDirect(fbb, w.name.c_str(), w.weekday_mask, static_cast<std::int16_t>(w.from_min),
                                             static_cast<std::int16_t>(w.to_min), w.price));
    return fb::CreateTariffPublishedDirect(fbb, uid.c_str(), tid.c_str(), version, m->kind(), m->price(),
                                           windows.empty() ? nullptr : &ws, m->cpp_price());
  });
  return status::ok();
}

status price_publish(context& c) {
  const auto* m = c.cmd.as<fb::PricePublish>();
  const std::string uid = s(m->utility()), tid = s(m->tariff());
  const utility_state* u = find(c.state.utilities, uid);
  if (u == nullptr) return refuse(errc::unknown_utility, "unknown utility '" + uid + "'");
  const tariff_state* t = find(u->tariffs, tid);
  if (t == nullptr) return refuse(errc::unknown_tariff, "unknown tariff '" + tid + "' of utility '" + uid + "'");
  if (t->versions.back().kind != fb::TariffKind::rtp)
    return refuse(errc::tariff_not_rtp, "tariff '" + tid + "' is not a real-time tariff");
  const unix_seconds hour = ts(m->hour());
  if (hour.value() % 3600 != 0) return refuse(errc::invalid_field, "field 'hour' must be the start of an hour");
  c.sink.emit(stream_of(stream_kind::utility, uid), Event::HourlyPricePublished, [&](auto& fbb) {
    return fb::CreateHourlyPricePublishedDirect(fbb, uid.c_str(), tid.c_str(), hour.value(), m->price());
  });
  return status::ok();
}

template <class Command, class Created>
status declare_event(context& c, Event type, Created create) {
  const auto* m = c.cmd.as<Command>();
  const std::string uid = s(m->utility());
  if (c.state.utilities.count(uid) == 0) return refuse(errc::unknown_utility, "unknown utility '" + uid + "'");
  const unix_seconds start = ts(m->start()), end = ts(m->end());
  if (end <= start) return refuse(errc::invalid_field, "field 'end' must be after 'start'");
  c.sink.emit(stream_of(stream_kind::utility, uid), type,
              [&](auto& fbb) { return create(fbb, uid.c_str(), start.value(), end.value()); });
  return status::ok();
}

status account_open(context& c) {
  const auto* m = c.cmd.as<fb::AccountOpen>();
  const std::string uid = s(m->utility()), aid = s(m->account());
  if (c.state.utilities.count(uid) == 0) return refuse(errc::unknown_utility, "unknown utility '" + uid + "'");
  if (c.state.accounts.count(aid) != 0) return refuse(errc::account_exists, "account '" + aid + "' exists");
  c.sink.emit(stream_of(stream_kind::account, aid), Event::AccountOpened, [&](auto& fbb) {
    return fb::CreateAccountOpenedDirect(fbb, uid.c_str(), aid.c_str(), m->customer()->c_str(), m->kind());
  });
  c.sink.emit(stream_of(stream_kind::utility, uid), Event::UtilityAccountAdded,
              [&](auto& fbb) { return fb::CreateUtilityAccountAddedDirect(fbb, uid.c_str(), aid.c_str()); });
  return status::ok();
}

status account_topup(context& c) {
  const auto* m = c.cmd.as<fb::AccountTopup>();
  const std::string aid = s(m->account());
  if (c.state.accounts.count(aid) == 0) return refuse(errc::unknown_account, "unknown account '" + aid + "'");
  c.sink.emit(stream_of(stream_kind::account, aid), Event::AccountToppedUp,
              [&](auto& fbb) { return fb::CreateAccountToppedUpDirect(fbb, aid.c_str(), m->amount()); });
  return status::ok();
}

status premise_register(context& c) {
  const auto* m = c.cmd.as<fb::PremiseRegister>();
  const std::string uid = s(m->utility()), pid = s(m->premise()), aid = s(m->account()), tid = s(m->default_tariff());
  const utility_state* u = find(c.state.utilities, uid);
  if (u == nullptr) return refuse(errc::unknown_utility, "unknown utility '" + uid + "'");
  if (c.state.premises.count(pid) != 0) return refuse(errc::premise_exists, "premise '" + pid + "' exists");
  const account_state* a = find(c.state.accounts, aid);
  if (a == nullptr) return refuse(errc::unknown_account, "unknown account '" + aid + "'");
  if (a->utility != uid) return refuse(errc::utility_mismatch, "account '" + aid + "' belongs to '" + a->utility + "'");
  if (u->tariffs.count(tid) == 0) return refuse(errc::unknown_tariff, "unknown tariff '" + tid + "' of '" + uid + "'");
  c.sink.emit(stream_of(stream_kind::premise, pid), Event::PremiseRegistered, [&](auto& fbb) {
    return fb::CreatePremiseRegisteredDirect(fbb, uid.c_str(), pid.c_str(), aid.c_str(), tid.c_str(),
                                             m->guest_policy(), m->kind());
  });
  return status::ok();
}

status station_transition(context& c, const flatbuffers::String* premise_id, fb::StationState from,
                          fb::StationState to) {
  const std::string pid = s(premise_id);
  const premise_state* p = find(c.state.premises, pid);
  if (p == nullptr) return refuse(errc::unknown_premise, "unknown premise '" + pid + "'");
  if (p->kind != fb::PremiseKind::public_) return refuse(errc::not_public, "premise '" + pid + "' is not a station");
  if (p->station != from)
    return refuse(errc::invalid_state, "station '" + pid + "' is " + fb::EnumNameStationState(p->station));
  c.sink.emit(stream_of(stream_kind::premise, pid), Event::StationStateChanged,
              [&](auto& fbb) { return fb::CreateStationStateChangedDirect(fbb, pid.c_str(), to); });
  return status::ok();
}

status device_commission(context& c) {
  const auto* m = c.cmd.as<fb::DeviceCommission>();
  const std::string pid = s(m->premise()), did = s(m->device());
  if (c.state.premises.count(pid) == 0) return refuse(errc::unknown_premise, "unknown premise '" + pid + "'");
  if (c.state.devices.count(did) != 0) return refuse(errc::device_exists, "device '" + did + "' exists");
  c.sink.emit(stream_of(stream_kind::device, did), Event::DeviceCommissioned, [&](auto& fbb) {
    return fb::CreateDeviceCommissionedDirect(fbb, pid.c_str(), did.c_str(), m->kind(), m->interval_s());
  });
  c.sink.emit(stream_of(stream_kind::premise, pid), Event::PremiseDeviceAdded,
              [&](auto& fbb) { return fb::CreatePremiseDeviceAddedDirect(fbb, pid.c_str(), did.c_str(), m->kind()); });
  return status::ok();
}

status device_configure(context& c) {
  const auto* m = c.cmd.as<fb::DeviceConfigure>();
  const std::string did = s(m->device());
  const device_state* d = find(c.state.devices, did);
  if (d == nullptr) return refuse(errc::unknown_device, "unknown device '" + did + "'");
  if (d->kind != fb::DeviceKind::eumd) return refuse(errc::not_eumd, "device '" + did + "' is not an EUMD");
  c.sink.emit(stream_of(stream_kind::device, did), Event::DeviceConfigured,
              [&](auto& fbb) { return fb::CreateDeviceConfiguredDirect(fbb, did.c_str(), m->interval_s()); });
  if (m->interval_s() != d->interval_s) c.out.answer.reconfigured = device_answer::eumd_interval{did, m->interval_s()};
  return status::ok();
}

status pev_enroll(context& c) {
  const auto* m = c.cmd.as<fb::PevEnroll>();
  const std::string aid = s(m->account()), vin = s(m->pev()), tid = s(m->tariff()), pid = s(m->home_premise());
  const account_state* a = find(c.state.accounts, aid);
  if (a == nullptr) return refuse(errc::unknown_account, "unknown account '" + aid + "'");
  if (!is_valid_vin(vin)) return refuse(errc::invalid_vin, "'" + vin + "' is not a valid VIN");
  if (c.state.pevs.count(vin) != 0) return refuse(errc::pev_enrolled, "PEV '" + vin + "' is enrolled");
  const premise_state* p = find(c.state.premises, pid);
  if (p == nullptr) return refuse(errc::unknown_premise, "unknown premise '" + pid + "'");
  if (p->utility != a->utility)
    return refuse(errc::utility_mismatch, "premise '" + pid + "' is not in the territory of '" + a->utility + "'");
  if (c.state.utilities.at(a->utility).tariffs.count(tid) == 0)
    return refuse(errc::unknown_tariff, "unknown tariff '" + tid + "' of '" + a->utility + "'");
  c.sink.emit(stream_of(stream_kind::pev, vin), Event::PevEnrolled, [&](auto& fbb) {
    return fb::CreatePevEnrolledDirect(fbb, vin.c_str(), aid.c_str(), a->utility.c_str(), tid.c_str(), pid.c_str(),
                                       m->allow_roaming());
  });
  c.sink.emit(stream_of(stream_kind::registry, vin), Event::VinRegistered, [&](auto& fbb) {
    return fb::CreateVinRegisteredDirect(fbb, vin.c_str(), a->utility.c_str(), aid.c_str());
  });
  return status::ok();
}

status device_at(const ledger_state& state, const std::string& did, const std::string& pid, fb::DeviceKind kind) {
  const device_state* d = find(state.devices, did);
  if (d == nullptr) return refuse(errc::unknown_device, "unknown device '" + did + "'");
  if (d->kind != kind) {
    if (kind == fb::DeviceKind::eumd) return refuse(errc::not_eumd, "device '" + did + "' is not an EUMD");
    return refuse(errc::device_mismatch, "device '" + did + "' is not an ESCI");
  }
  if (d->premise != pid)
    return refuse(errc::device_mismatch, "device '" + did + "' is commissioned at '" + d->premise + "'");
  return status::ok();
}

status pev_setup(context& c) {
  const auto* m = c.cmd.as<fb::PevSetup>();
  const std::string vin = s(m->pev()), pid = s(m->premise()), esci = s(m->esci()), eumd = s(m->eumd());
  if (c.state.pevs.count(vin) == 0) return refuse(errc::unknown_pev, "PEV '" + vin + "' is not enrolled");
  if (c.state.premises.count(pid) == 0) return refuse(errc::unknown_premise, "unknown premise '" + pid + "'");
  PEV_RETURN_IF_ERROR(device_at(c.state, esci, pid, fb::DeviceKind::esci));
  PEV_RETURN_IF_ERROR(device_at(c.state, eumd, pid, fb::DeviceKind::eumd));
  c.sink.emit(stream_of(stream_kind::pev, vin), Event::PevSetUp, [&](auto& fbb) {
    return fb::CreatePevSetUpDirect(fbb, vin.c_str(), pid.c_str(), esci.c_str(), eumd.c_str());
  });
  return status::ok();
}

void emit_anomaly(event_sink& sink, fb::AnomalyKind kind, const std::string& session, const std::string& device,
                  unix_seconds start, std::int64_t expected, std::int64_t observed, const std::string& detail) {
  sink.emit(stream_of(stream_kind::session, session), Event::AnomalyRecorded, [&](auto& fbb) {
    return fb::CreateAnomalyRecordedDirect(fbb, kind, session.c_str(), device.empty() ? nullptr : device.c_str(),
                                           start.value(), expected, observed, detail.c_str());
  });
}

status session_plug(context& c) {
  const auto* m = c.cmd.as<fb::SessionPlug>();
  const std::string sid = s(m->session()), pid = s(m->premise());
  if (c.state.sessions.count(sid) != 0) return refuse(errc::session_exists, "session '" + sid + "' exists");
  const premise_state* p = find(c.state.premises, pid);
  if (p == nullptr) return refuse(errc::unknown_premise, "unknown premise '" + pid + "'");
  if (p->kind != fb::PremiseKind::residential)
    return refuse(errc::not_residential, "premise '" + pid + "' is a public station: sessions start with a card");
  std::string eumd;
  if (m->eumd() != nullptr) {
    eumd = s(m->eumd());
    PEV_RETURN_IF_ERROR(device_at(c.state, eumd, pid, fb::DeviceKind::eumd));
  } else if (!p->eumds.empty()) {
    eumd = p->eumds.front();
  }
  const device_state* meter = eumd.empty() ? nullptr : find(c.state.devices, eumd);
  c.sink.emit(stream_of(stream_kind::session, sid), Event::SessionPlugged, [&](auto& fbb) {
    return fb::CreateSessionPluggedDirect(fbb, sid.c_str(), pid.c_str(), p->utility.c_str(),
                                          eumd.empty() ? nullptr : eumd.c_str());
  });
  emit_undecided(c.sink, sid, p->utility);
  if (meter != nullptr) {
    // Accepted all the same (SPEC section 5): the EUMD named, or the premise's, is still metering.
    if (!meter->open_sessions.empty())
      emit_anomaly(c.sink, fb::AnomalyKind::eumd_in_use, sid, eumd, c.cmd.at, 0, 0,
                   "plugged on EUMD '" + eumd + "' while its session '" + *meter->open_sessions.rbegin() +
                       "' is open (" + std::to_string(meter->open_sessions.size()) + " open)");
    c.sink.emit(stream_of(stream_kind::device, eumd), Event::DeviceSessionOpened,
                [&](auto& fbb) { return fb::CreateDeviceSessionOpenedDirect(fbb, eumd.c_str(), sid.c_str()); });
  }
  c.out.answer.bind_deadline = unix_seconds(c.cmd.at.value() + c.state.utilities.at(p->utility).comm_timeout_s);
  return status::ok();
}

status session_bind(context& c) {
  const auto* m = c.cmd.as<fb::SessionBind>();
  const std::string sid = s(m->session()), vin = s(m->pev());
  const session_state* ss = find(c.state.sessions, sid);
  if (ss == nullptr) return refuse(errc::unknown_session, "unknown session '" + sid + "'");
  if (ss->is_public) return refuse(errc::not_residential, "session '" + sid + "' is at a public station");
  if (ss->bound) return refuse(errc::already_bound, "session '" + sid + "' is bound to '" + ss->bound_pev + "'");
  const std::int64_t timeout = c.state.utilities.at(ss->utility).comm_timeout_s;
  const bool in_time = c.cmd.at.value() - ss->began.value() <= timeout;
  const pev_state* pev = find(c.state.pevs, vin);
  const bool rebind = pev != nullptr && pev->set_up && pev->setup_premise == ss->premise;
  c.sink.emit(stream_of(stream_kind::session, sid), Event::BindReceived, [&](auto& fbb) {
    // The VIN as received, NUL and all: it is free text (never refused), and a C string would
    // record "DYE5JEZU37RVKV2HL\u0000x" as an enrolled PEV's VIN.
    const auto session = fbb.CreateString(sid);
    const auto pev = fbb.CreateString(vin);
    return fb::CreateBindReceived(fbb, session, pev, in_time, rebind);
  });
  if (ss->decision) return status::ok();  // decided without a bind: accepted, changes nothing
  booking b{c.state, c.sink};
  decide_and_book(b, sid, *ss, decide_residential(c.state, *ss, vin, c.cmd.at));
  return status::ok();
}

status session_start(context& c) {
  const auto* m = c.cmd.as<fb::SessionStart>();
  const std::string sid = s(m->session()), pid = s(m->premise()), cid = s(m->card()), phone = s(m->phone());
  // A card or an SMS number, and an SMS-started session is online (SPEC section 6).
  if (m->card() == nullptr && m->phone() == nullptr)
    return refuse(errc::missing_field, "session.start needs a 'card' or a 'phone'");
  if (m->card() != nullptr && m->phone() != nullptr)
    return refuse(errc::invalid_field, "session.start names a 'card' and a 'phone': one of them starts a session");
  if (m->phone() != nullptr && m->online().has_value() && !*m->online())
    return refuse(errc::invalid_field, "a session started by SMS is online: field 'online' must be true or absent");
  if (m->card() != nullptr && !m->online().has_value()) return refuse(errc::missing_field, "missing field 'online'");
  const bool online = m->phone() != nullptr || *m->online();
  if (c.state.sessions.count(sid) != 0) return refuse(errc::session_exists, "session '" + sid + "' exists");
  const premise_state* p = find(c.state.premises, pid);
  if (p == nullptr) return refuse(errc::unknown_premise, "unknown premise '" + pid + "'");
  if (p->kind != fb::PremiseKind::public_) return refuse(errc::not_public, "premise '" + pid + "' is not a station");
  if (p->station != fb::StationState::active)
    return refuse(errc::station_not_active, "station '" + pid + "' is " + fb::EnumNameStationState(p->station));
  std::optional<session_decision> decided;
  std::string account_id;
  if (online) {
    const std::string what = phone.empty() ? "card '" + cid + "'" : "phone '" + phone + "'";
    if (phone.empty()) {
      const card_state* card = find(c.state.cards, cid);
      if (card == nullptr) return refuse(errc::unknown_card, "unknown card '" + cid + "'");
      if (card->current().revoked_at) return refuse(errc::card_revoked, "card '" + cid + "' is revoked");
      account_id = card->current().account;
    } else {
      const phone_state* number = find(c.state.phones, phone);
      if (number == nullptr || number->current().revoked_at)
        return refuse(errc::unknown_phone, "phone '" + phone + "' is " + (number == nullptr ? "not assigned" : "revoked"));
      account_id = number->current().account;
    }
    const account_state& a = c.state.accounts.at(account_id);
    if (a.utility != p->utility)
      return refuse(errc::utility_mismatch, what + " belongs to a customer of '" + a.utility + "'");
    session_decision d;
    d.payer = fb::Payer::card_account;
    d.payer_account = account_id;
    d.payer_utility = a.utility;
    d.tariff = p->default_tariff;
    d.tariff_utility = p->utility;
    if (a.kind == fb::AccountKind::prepaid) {
      const std::int64_t reserve = c.state.utilities.at(a.utility).prepaid_reserve;
      if (a.available_micro() < reserve)
        return refuse(errc::insufficient_balance, "account '" + account_id + "' does not cover the reservation of " +
                                                      std::to_string(reserve) + " micro");
      d.reserved_micro = reserve;
    }
    decided = d;
  } else if (p->list.cards.count(cid) == 0) {
    return refuse(errc::card_not_whitelisted, "card '" + cid + "' is not on the whitelist of '" + pid + "'");
  }
  c.sink.emit(stream_of(stream_kind::session, sid), Event::SessionStarted, [&](auto& fbb) {
    return fb::CreateSessionStartedDirect(fbb, sid.c_str(), pid.c_str(), p->utility.c_str(), cid.c_str(), online,
                                          account_id.empty() ? nullptr : account_id.c_str(),
                                          phone.empty() ? nullptr : phone.c_str());
  });
  if (decided)
    emit_decision(c.sink, sid, *decided, "");
  else
    emit_undecided(c.sink, sid, p->utility);
  return status::ok();
}

status energy_request(context& c) {
  const auto* m = c.cmd.as<fb::EnergyRequest>();
  const std::string sid = s(m->session());
  const session_state* ss = find(c.state.sessions, sid);
  if (ss == nullptr) return refuse(errc::unknown_session, "unknown session '" + sid + "'");
  if (ss->unplugged) return refuse(errc::session_closed, "session '" + sid + "' is unplugged");
  const utility_state& host = c.state.utilities.at(ss->utility);
  // Defer past every direct-load-control event in force; each pass moves past one event.
  unix_seconds start = c.cmd.at;
  for (std::size_t pass = 0; pass <= host.load_controls.size(); ++pass) {
    bool moved = false;
    for (const time_range& dlc : host.load_controls)
      if (dlc.contains(start)) {
        start = dlc.end;
        moved = true;
      }
    if (!moved) break;
  }
  std::optional<std::int64_t> price_now;
  if (ss->decision) {
    const session_decision& d = *ss->decision;
    const std::string& tariff_utility = d.tariff_utility.empty() ? ss->utility : d.tariff_utility;
    const utility_state& u = c.state.utilities.at(tariff_utility);
    if (const tariff_state* t = find(u.tariffs, d.tariff)) price_now = price_interval(u, *t, c.cmd.at).price.value();
  }
  c.sink.emit(stream_of(stream_kind::session, sid), Event::EnergyGranted, [&](auto& fbb) {
    return fb::CreateEnergyGrantedDirect(fbb, sid.c_str(), m->wh(), ts(m->depart()).value(), start.value(), price_now);
  });
  c.out.answer.grant = device_answer::energy_grant{sid, m->wh(), start, ts(m->depart()), price_now};
  return status::ok();
}

// The checks of a new interval against its EUMD's neighbours in start order, in any session (SPEC
// section 5): its register counts over the device's life, and its intervals must not overlap.
// Recorded on the new interval's session, naming the later reading of a pair; billing is unchanged.
void check_neighbours(event_sink& sink, const std::string& sid, const std::string& device, std::int64_t start,
                      const interval_content& content, const interval_neighbours& n) {
  const interval_neighbour self{start, content};
  auto check_pair = [&](const interval_neighbour& earlier, const interval_neighbour& later) {
    const interval_content& e = earlier.content;
    const interval_content& l = later.content;
    if (earlier.start + e.seconds > later.start)
      emit_anomaly(sink, fb::AnomalyKind::interval_overlap, sid, device, unix_seconds(later.start), e.wh, l.wh,
                   "interval overlaps the one at " + format_timestamp(unix_seconds(earlier.start)) + " of session '" +
                       (&later == &self ? e.session : l.session) + "'");
    if (!e.register_wh || !l.register_wh) return;
    const std::int64_t delta = *l.register_wh - *e.register_wh;
    if (delta < 0) {
      emit_anomaly(sink, fb::AnomalyKind::register_backwards, sid, device, unix_seconds(later.start), *e.register_wh,
                   *l.register_wh, "register went backwards");
    } else if (earlier.start + e.seconds == later.start && delta != l.wh) {
      emit_anomaly(sink, fb::AnomalyKind::register_mismatch, sid, device, unix_seconds(later.start), delta, l.wh,
                   "interval Wh differs from its register delta");
    }
  };
  if (n.before) check_pair(*n.before, self);
  if (n.after) check_pair(self, *n.after);
}

// One interval as a device reported it: a meter.interval line, or one reading of an interval batch.
struct reported_interval {
  std::string device, session;
  unix_seconds start;
  interval_content content;
};

reported_interval interval_of(const fb::MeterInterval& m) {
  const std::string sid = s(m.session());
  return {s(m.device()), sid, ts(m.start()), {sid, m.seconds(), m.wh(), m.register_wh()}};
}

reported_interval interval_of(const wire::IntervalBatch& b, std::size_t index) {
  PEV_ASSERT(index < b.readings()->size());
  const wire::IntervalRow& r = *b.readings()->Get(static_cast<flatbuffers::uoffset_t>(index));
  const std::string sid = s(b.session());
  std::optional<std::int64_t> register_wh;
  if (r.has_register()) register_wh = r.register_wh();
  return {s(b.device()), sid, unix_seconds(r.start()), {sid, r.seconds(), r.wh(), register_wh}};
}

// Whether `did` may meter `sid`: both exist, the device is an EUMD at the session's premise and,
// for a residential session, the one the session plugged with.
status check_metering(const ledger_state& state, const std::string& did, const std::string& sid) {
  const device_state* d = find(state.devices, did);
  if (d == nullptr) return refuse(errc::unknown_device, "unknown device '" + did + "'");
  if (d->kind != fb::DeviceKind::eumd) return refuse(errc::not_eumd, "device '" + did + "' is not an EUMD");
  const session_state* ss = find(state.sessions, sid);
  if (ss == nullptr) return refuse(errc::unknown_session, "unknown session '" + sid + "'");
  if (d->premise != ss->premise || (!ss->is_public && ss->eumd != did))
    return refuse(errc::device_mismatch, "device '" + did + "' does not meter session '" + sid + "'");
  return status::ok();
}

// An interval already recorded with other content: refused, but auditors see that the device sent
// two versions of one interval.
status refuse_conflict(context& c, const reported_interval& in, const interval_content& first) {
  emit_anomaly(c.sink, fb::AnomalyKind::interval_conflict, first.session, in.device, in.start, first.wh,
               in.content.wh,
               "interval sent again with other content by command '" + c.cmd.id + "'; the first stands");
  return refuse(errc::interval_conflict, "interval of '" + in.device + "' at " + format_timestamp(in.start) +
                                             " was recorded with other content");
}

status record_interval(context& c, const reported_interval& in) {
  const std::string &did = in.device, &sid = in.session;
  PEV_RETURN_IF_ERROR(check_metering(c.state, did, sid));
  const session_state* ss = find(c.state.sessions, sid);
  const unix_seconds start = in.start;
  const interval_content& content = in.content;
  if (const interval_content* first = c.state.intervals.find(did, start.value())) {
    if (*first != content) return refuse_conflict(c, in, *first);
    c.out.duplicate = true;
    c.sink.emit(stream_of(stream_kind::session, sid), Event::IntervalDuplicated, [&](auto& fbb) {
      return fb::CreateIntervalDuplicatedDirect(fbb, did.c_str(), sid.c_str(), start.value());
    });
    return status::ok();
  }
  const std::optional<interval_neighbours> neighbours = c.state.intervals.neighbours(did, start.value());
  PEV_ASSERT(neighbours.has_value());  // prefetched
  c.sink.emit(stream_of(stream_kind::session, sid), Event::IntervalRecorded, [&](auto& fbb) {
    auto reading = fb::CreateIntervalReadingDirect(fbb, did.c_str(), sid.c_str(), start.value(), content.seconds,
                                                   content.wh, content.register_wh);
    return fb::CreateIntervalRecorded(fbb, reading);
  });
  // The command checks bound an interval's seconds to a day.
  const session_reading reading{start.value(), content.wh, content.register_wh, static_cast<std::int32_t>(content.seconds)};
  check_neighbours(c.sink, sid, did, start.value(), content, *neighbours);
  // An EUMD reports at the interval it was commissioned or configured with; billing is unchanged.
  if (const std::int64_t configured = c.state.devices.at(did).interval_s; content.seconds != configured)
    emit_anomaly(c.sink, fb::AnomalyKind::interval_length, sid, did, start, 0, 0,
                 "a " + std::to_string(content.seconds) + " s interval from EUMD '" + did + "', configured for " +
                     std::to_string(configured) + " s");
  if (ss->decision) {
    booking b{c.state, c.sink};
    book_reading(b, sid, *ss, *ss->decision, reading);
  }
  return status::ok();
}

status meter_interval(context& c) { return record_interval(c, interval_of(*c.cmd.as<fb::MeterInterval>())); }

// A batch is admitted whole or refused whole: what would refuse any of its readings is checked
// here, before the first is decided (each reading then as the meter.interval line that spells it).
// Only a reading already recorded can refuse one, and only with other content; the reader checked
// every field and that starts increase, so no two readings of a batch share an identity.
status admit_interval_batch(context& c) {
  const auto& b = *c.cmd.as<wire::IntervalBatch>();
  PEV_RETURN_IF_ERROR(check_metering(c.state, s(b.device()), s(b.session())));
  for (std::size_t i = 0; i < b.readings()->size(); ++i) {
    const reported_interval in = interval_of(b, i);
    if (const interval_content* first = c.state.intervals.find(in.device, in.start.value()); first != nullptr &&
                                                                                            *first != in.content)
      return refuse_conflict(c, in, *first);
  }
  return status::ok();
}

// PEV total against EUMD total: a difference over max(10 Wh, 1 %) is an anomaly.
void reconcile(event_sink& sink, const std::string& sid, std::int64_t pev_wh, std::int64_t eumd_wh) {
  const std::int64_t diff = pev_wh > eumd_wh ? pev_wh - eumd_wh : eumd_wh - pev_wh;
  if (diff > 10 && diff * 100 > eumd_wh)
    emit_anomaly(sink, fb::AnomalyKind::reconciliation, sid, "", unix_seconds(0), eumd_wh, pev_wh,
                 "PEV total differs from the EUMD total by " + std::to_string(diff) + " Wh");
}

status pev_total(context& c) {
  const auto* m = c.cmd.as<fb::PevTotal>();
  const std::string sid = s(m->session());
  const session_state* ss = find(c.state.sessions, sid);
  if (ss == nullptr) return refuse(errc::unknown_session, "unknown session '" + sid + "'");
  c.sink.emit(stream_of(stream_kind::session, sid), Event::PevTotalReported,
              [&](auto& fbb) { return fb::CreatePevTotalReportedDirect(fbb, sid.c_str(), m->wh()); });
  // Reported after unplug: reconciled on arrival, since unplug had nothing to compare.
  if (ss->unplugged) reconcile(c.sink, sid, m->wh(), ss->eumd_wh);
  return status::ok();
}

// The gateway's timer (not in SPEC section 6): no bind came within the communication timeout, so
// the session falls back now, not at its unplug or a run (SPEC section 3's bind_timeout row).
status session_timeout(context& c) {
  const std::string sid = s(c.cmd.as<fb::SessionTimeout>()->session());
  const session_state* ss = find(c.state.sessions, sid);
  if (ss == nullptr) return refuse(errc::unknown_session, "unknown session '" + sid + "'");
  if (ss->is_public) return refuse(errc::not_residential, "session '" + sid + "' is at a public station");
  if (ss->decision) return refuse(errc::invalid_state, "session '" + sid + "' is decided already");
  const std::int64_t timeout = c.state.utilities.at(ss->utility).comm_timeout_s;
  if (c.cmd.at.value() - ss->began.value() <= timeout)
    return refuse(errc::invalid_state, "the communication timeout of session '" + sid + "' passes after " +
                                           format_timestamp(unix_seconds(ss->began.value() + timeout)));
  booking b{c.state, c.sink};
  decide_and_book(b, sid, *ss, decide_unbound(c.state, *ss, c.cmd.at));
  return status::ok();
}

status session_unplug(context& c) {
  const auto* m = c.cmd.as<fb::SessionUnplug>();
  const std::string sid = s(m->session());
  const session_state* ss = find(c.state.sessions, sid);
  if (ss == nullptr) return refuse(errc::unknown_session, "unknown session '" + sid + "'");
  if (ss->unplugged) return refuse(errc::session_closed, "session '" + sid + "' is unplugged");
  session_decision d;
  pending_lines pending;  // lines this unplug books for a session it decides
  if (ss->decision) {
    d = *ss->decision;
  } else {
    d = ss->is_public ? decide_offline(c.state, *ss) : decide_unbound(c.state, *ss, c.cmd.at);
    booking b{c.state, c.sink, &pending};
    decide_and_book(b, sid, *ss, d);
  }
  if (ss->pev_total_wh) reconcile(c.sink, sid, *ss->pev_total_wh, ss->eumd_wh);
  // Post what the session booked, on each account it booked to.
  std::map<std::string, std::int64_t> to_post;
  for (const std::string& account_id : {d.payer_account, d.credit_account, c.state.premises.at(ss->premise).account}) {
    if (account_id.empty() || to_post.count(account_id) != 0) continue;
    std::int64_t amount = 0;
    const account_state& a = c.state.accounts.at(account_id);
    if (auto it = a.unposted_micro.find(sid); it != a.unposted_micro.end()) amount += it->second;
    for (const auto& [where, lines] : pending)
      if (where.first == account_id)
        for (const auto& [key, t] : lines) amount += t.amount_micro;
    to_post[account_id] = amount;
  }
  for (const auto& [account_id, amount] : to_post) {
    if (amount == 0) continue;
    c.sink.emit(stream_of(stream_kind::account, account_id), Event::AmountsPosted, [&](auto& fbb) {
      return fb::CreateAmountsPostedDirect(fbb, account_id.c_str(), sid.c_str(), amount);
    });
  }
  if (d.reserved_micro > 0)
    c.sink.emit(stream_of(stream_kind::account, d.payer_account), Event::ReservationReleased, [&](auto& fbb) {
      return fb::CreateReservationReleasedDirect(fbb, d.payer_account.c_str(), sid.c_str(), d.reserved_micro);
    });
  c.sink.emit(stream_of(stream_kind::session, sid), Event::SessionUnplugged,
              [&](auto& fbb) { return fb::CreateSessionUnpluggedDirect(fbb, sid.c_str()); });
  if (!ss->eumd.empty())
    c.sink.emit(stream_of(stream_kind::device, ss->eumd), Event::DeviceSessionClosed,
                [&](auto& fbb) { return fb::CreateDeviceSessionClosedDirect(fbb, ss->eumd.c_str(), sid.c_str()); });
  const std::string& premise_account = c.state.premises.at(ss->premise).account;
  const std::int64_t paid = d.payer_account.empty() ? 0 : to_post[d.payer_account];
  const bool credit_apart = !d.credit_account.empty() && d.credit_account != d.payer_account;
  const std::int64_t credited = credit_apart ? to_post[d.credit_account] : 0;
  c.sink.emit(stream_of(stream_kind::session, sid), Event::SessionSummarized, [&](auto& fbb) {
    return fb::CreateSessionSummarizedDirect(
        fbb, sid.c_str(), ss->premise.c_str(), ss->utility.c_str(), premise_account.c_str(), ss->began.value(),
        c.cmd.at.value(), ss->eumd_wh, d.payer, d.reason, d.payer_account.empty() ? nullptr : d.payer_account.c_str(),
        d.pev.empty() ? nullptr : d.pev.c_str(), paid, credit_apart ? d.credit_account.c_str() : nullptr, credited);
  });
  return status::ok();
}

status card_assign(context& c) {
  const auto* m = c.cmd.as<fb::CardAssign>();
  const std::string cid = s(m->card()), aid = s(m->account());
  if (c.state.accounts.count(aid) == 0) return refuse(errc::unknown_account, "unknown account '" + aid + "'");
  if (const card_state* card = find(c.state.cards, cid); card != nullptr && !card->current().revoked_at)
    return refuse(errc::card_assigned, "card '" + cid + "' is assigned to '" + card->current().account + "'");
  c.sink.emit(stream_of(stream_kind::card, cid), Event::CardAssigned,
              [&](auto& fbb) { return fb::CreateCardAssignedDirect(fbb, cid.c_str(), aid.c_str()); });
  return status::ok();
}

status card_revoke(context& c) {
  const auto* m = c.cmd.as<fb::CardRevoke>();
  const std::string cid = s(m->card());
  const card_state* card = find(c.state.cards, cid);
  if (card == nullptr) return refuse(errc::unknown_card, "unknown card '" + cid + "'");
  if (card->current().revoked_at) return refuse(errc::card_revoked, "card '" + cid + "' is already revoked");
  c.sink.emit(stream_of(stream_kind::card, cid), Event::CardRevoked, [&](auto& fbb) {
    return fb::CreateCardRevokedDirect(fbb, cid.c_str(), card->current().account.c_str());
  });
  return status::ok();
}

status phone_assign(context& c) {
  const auto* m = c.cmd.as<fb::PhoneAssign>();
  const std::string phone = s(m->phone()), aid = s(m->account());
  if (c.state.accounts.count(aid) == 0) return refuse(errc::unknown_account, "unknown account '" + aid + "'");
  const phone_state* number = find(c.state.phones, phone);
  const bool held = number != nullptr && !number->current().revoked_at;
  if (held && number->current().account != aid)
    return refuse(errc::phone_assigned, "phone '" + phone + "' is assigned to '" + number->current().account + "'");
  if (held) return status::ok();  // assigned to this account already: accepted, changes nothing
  c.sink.emit(stream_of(stream_kind::phone, phone), Event::PhoneAssigned,
              [&](auto& fbb) { return fb::CreatePhoneAssignedDirect(fbb, phone.c_str(), aid.c_str()); });
  return status::ok();
}

status phone_revoke(context& c) {
  const auto* m = c.cmd.as<fb::PhoneRevoke>();
  const std::string phone = s(m->phone());
  const phone_state* number = find(c.state.phones, phone);
  if (number == nullptr || number->current().revoked_at)
    return refuse(errc::unknown_phone, "phone '" + phone + "' is " + (number == nullptr ? "not assigned" : "revoked already"));
  c.sink.emit(stream_of(stream_kind::phone, phone), Event::PhoneRevoked, [&](auto& fbb) {
    return fb::CreatePhoneRevokedDirect(fbb, phone.c_str(), number->current().account.c_str());
  });
  return status::ok();
}

bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'); });
}

// access.grant and access.revoke (README, "Customer access"): the principal must exist; a revoke of
// a hash never granted is accepted and changes nothing a reader can see.
template <class Command>
status access_change(context& c, Event type) {
  const auto* m = c.cmd.as<Command>();
  const std::string hash = s(m->token_sha256()), aid = s(m->account()), named_utility = s(m->utility());
  if (!is_sha256_hex(hash)) return refuse(errc::invalid_field, "token_sha256 must be 64 lower-case hex digits");
  if (aid.empty() && named_utility.empty()) return refuse(errc::missing_field, "name an account or a utility");
  if (!aid.empty() && !named_utility.empty())
    return refuse(errc::invalid_field, "name an account or a utility, not both");
  std::string uid = named_utility, stream;
  if (!aid.empty()) {
    const account_state* account = find(c.state.accounts, aid);
    if (account == nullptr) return refuse(errc::unknown_account, "unknown account '" + aid + "'");
    uid = account->utility;
    stream = stream_of(stream_kind::account, aid);
  } else {
    if (c.state.utilities.count(uid) == 0) return refuse(errc::unknown_utility, "unknown utility '" + uid + "'");
    stream = stream_of(stream_kind::utility, uid);
  }
  const char* account_or_null = aid.empty() ? nullptr : aid.c_str();
  c.sink.emit(stream, type, [&](auto& fbb) -> flatbuffers::Offset<void> {
    if (type == Event::AccessGranted)
      return fb::CreateAccessGrantedDirect(fbb, hash.c_str(), uid.c_str(), account_or_null).Union();
    return fb::CreateAccessRevokedDirect(fbb, hash.c_str(), uid.c_str(), account_or_null).Union();
  });
  return status::ok();
}

status whitelist_push(context& c) {
  const auto* m = c.cmd.as<fb::WhitelistPush>();
  const std::string pid = s(m->premise());
  const premise_state* p = find(c.state.premises, pid);
  if (p == nullptr) return refuse(errc::unknown_premise, "unknown premise '" + pid + "'");
  if (p->kind != fb::PremiseKind::public_) return refuse(errc::not_public, "premise '" + pid + "' is not a station");
  if (m->version() <= p->list.version)
    return refuse(errc::stale_whitelist, "station '" + pid + "' has whitelist version " + std::to_string(p->list.version));
  c.sink.emit(stream_of(stream_kind::premise, pid), Event::WhitelistPushed, [&](auto& fbb) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> cards;
    for (const auto* card : *m->cards()) cards.push_back(fbb.CreateString(card));
    return fb::CreateWhitelistPushedDirect(fbb, pid.c_str(), m->version(), &cards);
  });
  return status::ok();
}

status bill_run(context& c) {
  const auto* m = c.cmd.as<fb::BillRun>();
  const std::string uid = s(m->utility());
  const utility_state* u = find(c.state.utilities, uid);
  if (u == nullptr) return refuse(errc::unknown_utility, "unknown utility '" + uid + "'");
  const std::int32_t period = month_of(m->period());
  if (u->billed_periods.count(period) != 0) {
    c.out.duplicate = true;  // a period is billed once
    return status::ok();
  }
  pending_lines pending;
  booking b{c.state, c.sink, &pending};
  decide_overdue_sessions(b, uid, c.cmd.at);
  const std::string period_text = month_period::from_index(period).to_string();
  const std::map<line_key, line_total> none;
  for (const std::string& aid : u->accounts) {
    const account_state& a = c.state.accounts.at(aid);
    const auto booked_it = a.lines.find(period);
    const std::map<line_key, line_total>& booked = booked_it != a.lines.end() ? booked_it->second : none;
    std::int64_t total = 0;
    for (const auto& [key, t] : booked) total += t.amount_micro;
    std::size_t line_count = booked.size();
    // Lines this run books (sessions it decides) join the bill; most accounts have none.
    if (auto it = pending.find({aid, period}); it != pending.end())
      for (const auto& [key, t] : it->second) {
        total += t.amount_micro;
        if (booked.count(key) == 0) ++line_count;
      }
    c.sink.emit(stream_of(stream_kind::account, aid), Event::BillIssued, [&](auto& fbb) {
      return fb::CreateBillIssuedDirect(fbb, aid.c_str(), uid.c_str(), period_text.c_str(), total,
                                        total_cents(amount_micro(total)), static_cast<std::uint32_t>(line_count));
    });
  }
  c.sink.emit(stream_of(stream_kind::utility, uid), Event::BillRunCompleted, [&](auto& fbb) {
    return fb::CreateBillRunCompletedDirect(fbb, uid.c_str(), period_text.c_str(),
                                            static_cast<std::uint32_t>(u->accounts.size()));
  });
  return status::ok();
}

status settlement_run(context& c) {
  const auto* m = c.cmd.as<fb::SettlementRun>();
  const std::int32_t period = month_of(m->period());
  if (c.state.clearinghouse.settled_periods.count(period) != 0) {
    c.out.duplicate = true;
    return status::ok();
  }
  // Sessions this run decides fall back to the main meter or are public: they book no roaming
  // credit, so the statement is what the state holds.
  booking b{c.state, c.sink};
  decide_overdue_sessions(b, "", c.cmd.at);
  std::map<std::pair<std::string, std::string>, settlement_pair_total> gross;
  if (auto it = c.state.clearinghouse.roaming_credits.find(period); it != c.state.clearinghouse.roaming_credits.end())
    gross = it->second;
  const std::string period_text = month_period::from_index(period).to_string();
  const std::vector<settlement_entry> entries = statement_entries(gross);
  c.sink.emit(std::string(stream_kind::clearinghouse), Event::SettlementIssued, [&](auto& fbb) {
    std::vector<flatbuffers::Offset<fb::SettlementEntry>> es;
    for (const auto& e : entries)
      es.push_back(fb::CreateSettlementEntryDirect(fbb, e.home_utility.c_str(), e.roaming_utility.c_str(), e.wh,
                                                   e.amount_micro, e.net));
    return fb::CreateSettlementIssuedDirect(fbb, period_text.c_str(), &es);
  });
  return status::ok();
}

status dispatch(context& c) {
  using k = schema::command_kind;
  switch (c.cmd.kind) {
    case k::utility_register: return utility_register(c);
    case k::tariff_publish: return tariff_publish(c);
    case k::price_publish: return price_publish(c);
    case k::cpp_declare:
      return declare_event<fb::CppDeclare>(c, Event::CriticalPeakDeclared, [](auto& fbb, auto u, auto a, auto b) {
        return fb::CreateCriticalPeakDeclaredDirect(fbb, u, a, b);
      });
    case k::dlc_declare:
      return declare_event<fb::DlcDeclare>(c, Event::LoadControlDeclared, [](auto& fbb, auto u, auto a, auto b) {
        return fb::CreateLoadControlDeclaredDirect(fbb, u, a, b);
      });
    case k::account_open: return account_open(c);
    case k::account_topup: return account_topup(c);
    case k::premise_register: return premise_register(c);
    case k::station_boot:
      return station_transition(c, c.cmd.as<fb::StationBoot>()->premise(), fb::StationState::created,
                                fb::StationState::booted);
    case k::station_activate:
      return station_transition(c, c.cmd.as<fb::StationActivate>()->premise(), fb::StationState::booted,
                                fb::StationState::active);
    case k::device_commission: return device_commission(c);
    case k::device_configure: return device_configure(c);
    case k::pev_enroll: return pev_enroll(c);
    case k::pev_setup: return pev_setup(c);
    case k::session_plug: return session_plug(c);
    case k::session_bind: return session_bind(c);
    case k::session_start: return session_start(c);
    case k::energy_request: return energy_request(c);
    case k::meter_interval: return meter_interval(c);
    case k::pev_total: return pev_total(c);
    case k::session_unplug: return session_unplug(c);
    case k::session_timeout: return session_timeout(c);
    case k::card_assign: return card_assign(c);
    case k::card_revoke: return card_revoke(c);
    case k::phone_assign: return phone_assign(c);
    case k::phone_revoke: return phone_revoke(c);
    case k::access_grant: return access_change<fb::AccessGrant>(c, Event::AccessGranted);
    case k::access_revoke: return access_change<fb::AccessRevoke>(c, Event::AccessRevoked);
    case k::whitelist_push: return whitelist_push(c);
    case k::bill_run: return bill_run(c);
    case k::settlement_run: return settlement_run(c);
    case k::interval_batch: return admit_interval_batch(c);
  }
  PEV_ASSERT(false && "command kind outside the schema");
  return status::ok();
}

decision finish(context& c) {
  c.out.events = c.sink.take();
  PEV_ASSERT(c.out.events.size() <= limits::events_per_command_max);
  // A refusal leaves at most the audit records of what was refused.
  PEV_ASSERT(c.out.refusal.is_ok() || c.out.events.size() <= 1);
  return std::move(c.out);
}

}  // namespace

decision decide(const ledger_state& state, const schema::command& cmd) {
  context c{state, cmd, {}, {}};
  c.out.refusal = dispatch(c);
  return finish(c);
}

decision decide_reading(const ledger_state& state, const schema::command& batch, std::size_t index) {
  PEV_ASSERT(batch.kind == schema::command_kind::interval_batch);
  context c{state, batch, {}, {}};
  c.out.refusal = record_interval(c, interval_of(*batch.as<wire::IntervalBatch>(), index));
  // Admitted batches only: nothing can refuse one of their readings.
  PEV_ASSERT(c.out.refusal.is_ok());
  return finish(c);
}

}  // namespace pevledger::core
