#include "core/apply.hpp"

#include <limits>

#include "core/rating.hpp"

namespace pevledger::core {
namespace {

namespace fb = pevledger::schema;

std::string s(const flatbuffers::String* str) { return str == nullptr ? std::string() : str->str(); }

std::int32_t month_index(const flatbuffers::String* text) {
  auto m = parse_month(text->string_view());
  PEV_ASSERT(m.has_value());  // decide wrote it
  return m->index();
}

// Looks up an entity an event refers to; decide checked it exists, so absence is a bug.
template <class Map>
typename Map::mapped_type& must(Map& map, const std::string& key) {
  auto it = map.find(key);
  PEV_ASSERT(it != map.end());
  return it->second;
}

void on(ledger_state& st, const fb::UtilityRegistered& e, unix_seconds) {
  utility_state u;
  u.timezone = s(e.timezone());
  if (e.zone() != nullptr) {  // absent in events written before zones were pinned: the engine pins those
    std::vector<zone_rules::transition> table;
    table.reserve(e.zone()->size());
    for (const fb::ZoneTransition* t : *e.zone()) table.push_back({t->at(), t->offset_s()});
    auto rules = zone_rules::from_transitions(std::move(table));
    PEV_ASSERT(rules.has_value());  // decide wrote a valid table, and the record's hash holds it
    u.zone = std::make_shared<const zone_rules>(std::move(rules.value()));
  }
  u.comm_timeout_s = e.comm_timeout_s();
  u.prepaid_reserve = e.prepaid_reserve_micro();
  st.utilities.emplace(s(e.utility()), std::move(u));
}

void on(ledger_state& st, const fb::TariffPublished& e, unix_seconds at) {
  tariff_version v;
  v.in_force_from = at;
  v.kind = e.kind();
  v.base_price = e.base_price_micro_per_kwh();
  if (e.windows() != nullptr)
    for (const fb::TouWindow* w : *e.windows())
      v.windows.push_back({s(w->name()), w->weekday_mask(), w->from_min(), w->to_min(), w->price_micro_per_kwh()});
  if (e.cpp_price_micro_per_kwh()) v.cpp_price = *e.cpp_price_micro_per_kwh();
  tariff_state& t = must(st.utilities, s(e.utility())).tariffs[s(e.tariff())];
  PEV_ASSERT(t.versions.size() + 1 == e.version());
  t.versions.push_back(std::move(v));
}

void on(ledger_state& st, const fb::HourlyPricePublished& e, unix_seconds) {
  must(must(st.utilities, s(e.utility())).tariffs, s(e.tariff())).hourly[e.hour_start()] = e.price_micro_per_kwh();
}

void on(ledger_state& st, const fb::CriticalPeakDeclared& e, unix_seconds) {
  must(st.utilities, s(e.utility())).critical_peaks.push_back({unix_seconds(e.start()), unix_seconds(e.end())});
}

void on(ledger_state& st, const fb::LoadControlDeclared& e, unix_seconds) {
  must(st.utilities, s(e.utility())).load_controls.push_back({unix_seconds(e.start()), unix_seconds(e.end())});
}

void on(ledger_state& st, const fb::AccountOpened& e, unix_seconds) {
  account_state a;
  a.utility = s(e.utility());
  a.customer = s(e.customer());
  a.kind = e.kind();
  st.accounts.create(s(e.account()), std::move(a));
}

void on(ledger_state& st, const fb::AccountToppedUp& e, unix_seconds) {
  st.accounts.mut(s(e.account())).topups_micro += e.amount_micro();
}

void on(ledger_state& st, const fb::PremiseRegistered& e, unix_seconds) {
  premise_state p;
  p.utility = s(e.utility());
  p.account = s(e.account());
  p.default_tariff = s(e.default_tariff());
  p.guest_policy = e.guest_policy();
  p.kind = e.kind();
  st.premises.create(s(e.premise()), std::move(p));
}

void on(ledger_state& st, const fb::StationStateChanged& e, unix_seconds) {
  st.premises.mut(s(e.premise())).station = e.state();
}

void on(ledger_state& st, const fb::DeviceCommissioned& e, unix_seconds) {
  st.devices.create(s(e.device()), device_state{s(e.premise()), e.kind(), e.interval_s()});
}

void on(ledger_state& st, const fb::DeviceConfigured& e, unix_seconds) {
  st.devices.mut(s(e.device())).interval_s = e.interval_s();
}

void on(ledger_state& st, const fb::PevEnrolled& e, unix_seconds) {
  pev_state p;
  p.account = s(e.account());
  p.utility = s(e.utility());
  p.tariff = s(e.tariff());
  p.home_premise = s(e.home_premise());
  p.allow_roaming = e.allow_roaming();
  st.pevs.create(s(e.pev()), std::move(p));
}

void on(ledger_state& st, const fb::VinRegistered& e, unix_seconds) {
  st.registrations.create(s(e.pev()), {s(e.home_utility()), s(e.account())});
}

void on(ledger_state& st, const fb::PevSetUp& e, unix_seconds) {
  pev_state& p = st.pevs.mut(s(e.pev()));
  p.set_up = true;
  p.setup_premise = s(e.premise());
}

void on(ledger_state& st, const fb::CardAssigned& e, unix_seconds at) {
  st.cards.create_or_get(s(e.card())).history.push_back({s(e.account()), at, std::nullopt});
}

void on(ledger_state& st, const fb::CardRevoked& e, unix_seconds at) {
  card_state& c = st.cards.mut(s(e.card()));
  PEV_ASSERT(!c.current().revoked_at);
  c.history.back().revoked_at = at;
}

void on(ledger_state& st, const fb::PhoneAssigned& e, unix_seconds at) {
  st.phones.create_or_get(s(e.phone())).history.push_back({s(e.account()), at, std::nullopt});
}

void on(ledger_state& st, const fb::PhoneRevoked& e, unix_seconds at) {
  phone_state& p = st.phones.mut(s(e.phone()));
  PEV_ASSERT(!p.current().revoked_at);
  p.history.back().revoked_at = at;
}

// Access to read a customer's data is not ledger state: the HTTP server's directory
// (portal/directory.hpp) folds these from the log.
void on(ledger_state&, const fb::AccessGranted&, unix_seconds) {}
void on(ledger_state&, const fb::AccessRevoked&, unix_seconds) {}
// A message to the customer (portal/notifications.hpp), not state: the unplug changed the state.
void on(ledger_state&, const fb::SessionSummarized&, unix_seconds) {}

void on(ledger_state& st, const fb::WhitelistPushed& e, unix_seconds) {
  premise_state& p = st.premises.mut(s(e.premise()));
  p.list.version = e.version();
  p.list.cards.clear();
  if (e.cards() != nullptr)
    for (const auto* card : *e.cards()) p.list.cards.insert(card->str());
}

void on(ledger_state& st, const fb::SessionPlugged& e, unix_seconds at) {
  session_state ss;
  ss.premise = s(e.premise());
  ss.utility = s(e.utility());
  ss.eumd = s(e.eumd());
  ss.began = at;
  st.sessions.create(s(e.session()), std::move(ss));
}

void on(ledger_state& st, const fb::SessionStarted& e, unix_seconds at) {
  session_state ss;
  ss.premise = s(e.premise());
  ss.utility = s(e.utility());
  ss.is_public = true;
  ss.began = at;
  ss.card = s(e.card());
  ss.phone = s(e.phone());
  ss.online = e.online();
  ss.card_account = s(e.account());
  st.sessions.create(s(e.session()), std::move(ss));
}

void on(ledger_state& st, const fb::BindReceived& e, unix_seconds) {
  session_state& ss = st.sessions.mut(s(e.session()));
  if (ss.decision) return;  // a bind after the decision changes nothing
  ss.bound = true;
  ss.bound_pev = s(e.pev());
  ss.rebind = e.rebind();
}

void on(ledger_state& st, const fb::SessionDecided& e, unix_seconds) {
  const std::string sid = s(e.session());
  session_state& ss = st.sessions.mut(sid);
  PEV_ASSERT(!ss.decision.has_value());
  session_decision d;
  d.payer = e.payer();
  d.reason = e.reason();
  d.pev = s(e.pev());
  d.payer_account = s(e.payer_account());
  d.payer_utility = s(e.payer_utility());
  d.tariff = s(e.tariff());
  d.tariff_utility = s(e.tariff_utility());
  d.credit_account = s(e.credit_account());
  d.credit_tariff = s(e.credit_tariff());
  d.roaming = e.roaming();
  d.reserved_micro = e.reserved_micro();
  ss.decision = std::move(d);
  ss.held.clear();  // the LineBooked events that follow book them
}

void on(ledger_state& st, const fb::EnergyGranted& e, unix_seconds) {
  std::optional<std::int64_t> price;
  if (e.price_micro_per_kwh()) price = *e.price_micro_per_kwh();
  st.sessions.mut(s(e.session()))
      .grants.push_back({e.wh(), unix_seconds(e.depart()), unix_seconds(e.start()), price});
}

void on(ledger_state& st, const fb::PevTotalReported& e, unix_seconds) {
  st.sessions.mut(s(e.session())).pev_total_wh = e.wh();
}

void on(ledger_state& st, const fb::AmountsPosted& e, unix_seconds) {
  account_state& a = st.accounts.mut(s(e.account()));
  auto it = a.unposted_micro.find(s(e.session()));
  PEV_ASSERT(it != a.unposted_micro.end() && it->second == e.amount_micro());  // decide posted exactly that
  a.posted_micro += e.amount_micro();
  a.unposted_micro.erase(it);
}

void on(ledger_state& st, const fb::SessionUnplugged& e, unix_seconds) {
  session_state& ss = st.sessions.mut(s(e.session()));
  PEV_ASSERT(!ss.unplugged && ss.decision.has_value());
  ss.unplugged = true;  // from now on, lines of this session post on arrival
}

// The index of `device` among the EUMDs whose readings the session holds: a station's handful.
std::uint16_t reading_device(session_state& ss, std::string_view device) {
  for (std::size_t i = 0; i < ss.reading_devices.size(); ++i)
    if (ss.reading_devices[i] == device) return static_cast<std::uint16_t>(i);
  PEV_ASSERT(ss.reading_devices.size() < std::numeric_limits<std::uint16_t>::max());
  ss.reading_devices.emplace_back(device);
  return static_cast<std::uint16_t>(ss.reading_devices.size() - 1);
}

void record_reading(ledger_state& st, const fb::IntervalReading& r) {
  session_state& ss = st.sessions.mut(s(r.session()));
  ss.eumd_wh += r.wh();
  if (!ss.decision) ss.held.push_back(r.start());
  // Readings mostly arrive in start order; one per start is kept (decide refuses a second
  // version of an interval, and a start's first reading stands).
  auto at = ss.readings.end();
  if (!ss.readings.empty() && ss.readings.back().start >= r.start()) {
    at = ss.readings.begin() + (ss.reading_from(r.start()) - ss.readings.cbegin());
    if (at != ss.readings.end() && at->start == r.start()) return;
  }
  session_reading reading;
  reading.start = r.start();
  reading.wh = r.wh();
  if (r.register_wh()) reading.register_wh = *r.register_wh();
  PEV_ASSERT(r.seconds() > 0 && r.seconds() <= std::numeric_limits<std::int32_t>::max());  // decide took at most a day
  reading.seconds = static_cast<std::int32_t>(r.seconds());
  reading.device = reading_device(ss, r.device()->string_view());
  ss.readings.insert(at, reading);
}

void on(ledger_state& st, const fb::IntervalRecorded& e, unix_seconds) { record_reading(st, *e.reading()); }

void on(ledger_state& st, const fb::IntervalsRecorded& e, unix_seconds) {
  for (const fb::IntervalReading* r : *e.readings()) record_reading(st, *r);
}

void on(ledger_state& st, const fb::IntervalDuplicated& e, unix_seconds) {
  ++st.sessions.mut(s(e.session())).duplicates;
}

void on(ledger_state& st, const fb::AnomalyRecorded& e, unix_seconds) {
  auto* slot = st.sessions.resident(s(e.session()));
  PEV_ASSERT(slot != nullptr);  // decide records anomalies of known sessions only
  slot->state.anomalies.push_back(
      {e.kind(), unix_seconds(e.interval_start()), e.expected_wh(), e.observed_wh(), s(e.detail())});
}

void on(ledger_state& st, const fb::LineBooked& e, unix_seconds) {
  account_state& a = st.accounts.mut(s(e.account()));
  const std::string sid = s(e.session());
  line_key key{sid, e.kind(), s(e.tariff()), s(e.window()), e.kind() == fb::LineKind::adjustment ? e.adjusts() : fb::LineKind::charge,
               e.original_period() != nullptr ? month_index(e.original_period()) : 0};
  line_total& t = a.lines[month_index(e.period())][key];
  t.wh += e.wh();
  t.amount_micro += e.amount_micro();
  if (e.posted()) {
    a.posted_micro += e.amount_micro();
  } else if ((a.unposted_micro[sid] += e.amount_micro()) == 0) {
    a.unposted_micro.erase(sid);  // nothing to post: unplug will emit no AmountsPosted for it
  }
}

void on(ledger_state& st, const fb::LinesBooked& e, unix_seconds at) {
  for (const fb::LineBooked* line : *e.lines()) on(st, *line, at);
}

void on(ledger_state& st, const fb::RoamingCreditCounted& e, unix_seconds) {
  settlement_pair_total& owed = st.clearinghouse.roaming_credits[month_index(e.settlement_period())]
                                                                [{s(e.home_utility()), s(e.roaming_utility())}];
  owed.wh += e.wh();
  owed.amount_micro += e.owed_micro();
}

void on(ledger_state& st, const fb::UtilityAccountAdded& e, unix_seconds) {
  must(st.utilities, s(e.utility())).accounts.push_back(s(e.account()));
}

void on(ledger_state& st, const fb::PremiseDeviceAdded& e, unix_seconds) {
  premise_state& p = st.premises.mut(s(e.premise()));
  (e.kind() == fb::DeviceKind::eumd ? p.eumds : p.escis).push_back(s(e.device()));
}

void on(ledger_state& st, const fb::UndecidedSessionAdded& e, unix_seconds) {
  const bool inserted = must(st.utilities, s(e.utility())).undecided_sessions.insert(s(e.session())).second;
  PEV_ASSERT(inserted);
}

void on(ledger_state& st, const fb::UndecidedSessionRemoved& e, unix_seconds) {
  const auto erased = must(st.utilities, s(e.utility())).undecided_sessions.erase(s(e.session()));
  PEV_ASSERT(erased == 1);
}

void on(ledger_state& st, const fb::DeviceSessionOpened& e, unix_seconds) {
  st.devices.mut(s(e.device())).open_sessions.insert(s(e.session()));
}

// A session plugged before its EUMD kept open sessions (a pevledger-log-3 database) closes none.
void on(ledger_state& st, const fb::DeviceSessionClosed& e, unix_seconds) {
  st.devices.mut(s(e.device())).open_sessions.erase(s(e.session()));
}

void on(ledger_state& st, const fb::ReservationHeld& e, unix_seconds) {
  account_state& a = st.accounts.mut(s(e.account()));
  const bool inserted = a.reservations.emplace(s(e.session()), e.amount_micro()).second;
  PEV_ASSERT(inserted);  // a session reserves once
}

void on(ledger_state& st, const fb::ReservationReleased& e, unix_seconds) {
  account_state& a = st.accounts.mut(s(e.account()));
  auto it = a.reservations.find(s(e.session()));
  PEV_ASSERT(it != a.reservations.end() && it->second == e.amount_micro());  // released as held
  a.reservations.erase(it);
}

void on(ledger_state& st, const fb::BillIssued& e, unix_seconds) {
  st.accounts.mut(s(e.account())).bills[month_index(e.period())] = {e.total_micro(), e.total_cents(), e.line_count()};
}

void on(ledger_state& st, const fb::BillRunCompleted& e, unix_seconds) {
  must(st.utilities, s(e.utility())).billed_periods.insert(month_index(e.period()));
}

void on(ledger_state& st, const fb::SettlementIssued& e, unix_seconds) {
  const std::int32_t period = month_index(e.period());
  std::vector<settlement_entry> entries;
  if (e.entries() != nullptr)
    for (const fb::SettlementEntry* x : *e.entries())
      entries.push_back({s(x->home_utility()), s(x->roaming_utility()), x->wh(), x->amount_micro(), x->net()});
  st.clearinghouse.settled_periods.insert(period);
  st.clearinghouse.statements[period] = std::move(entries);
}

}  // namespace

void apply(ledger_state& st, const schema::EventBody& body, unix_seconds at) {
  using E = fb::Event;
  switch (body.event_type()) {
#define PEV_APPLY(name) \
  case E::name:         \
    return on(st, *body.event_as_##name(), at);
    PEV_APPLY(UtilityRegistered)
    PEV_APPLY(TariffPublished)
    PEV_APPLY(HourlyPricePublished)
    PEV_APPLY(CriticalPeakDeclared)
    PEV_APPLY(LoadControlDeclared)
    PEV_APPLY(AccountOpened)
    PEV_APPLY(AccountToppedUp)
    PEV_APPLY(PremiseRegistered)
    PEV_APPLY(StationStateChanged)
    PEV_APPLY(DeviceCommissioned)
    PEV_APPLY(DeviceConfigured)
    PEV_APPLY(PevEnrolled)
    PEV_APPLY(VinRegistered)
    PEV_APPLY(PevSetUp)
    PEV_APPLY(CardAssigned)
    PEV_APPLY(CardRevoked)
    PEV_APPLY(WhitelistPushed)
    PEV_APPLY(SessionPlugged)
    PEV_APPLY(SessionStarted)
    PEV_APPLY(BindReceived)
    PEV_APPLY(SessionDecided)
    PEV_APPLY(EnergyGranted)
    PEV_APPLY(PevTotalReported)
    PEV_APPLY(SessionUnplugged)
    PEV_APPLY(IntervalRecorded)
    PEV_APPLY(IntervalDuplicated)
    PEV_APPLY(AnomalyRecorded)
    PEV_APPLY(LineBooked)
    PEV_APPLY(AmountsPosted)
    PEV_APPLY(ReservationHeld)
    PEV_APPLY(ReservationReleased)
    PEV_APPLY(BillIssued)
    PEV_APPLY(BillRunCompleted)
    PEV_APPLY(SettlementIssued)
    PEV_APPLY(UtilityAccountAdded)
    PEV_APPLY(PremiseDeviceAdded)
    PEV_APPLY(UndecidedSessionAdded)
    PEV_APPLY(UndecidedSessionRemoved)
    PEV_APPLY(DeviceSessionOpened)
    PEV_APPLY(DeviceSessionClosed)
    PEV_APPLY(PhoneAssigned)
    PEV_APPLY(PhoneRevoked)
    PEV_APPLY(AccessGranted)
    PEV_APPLY(AccessRevoked)
    PEV_APPLY(SessionSummarized)
    PEV_APPLY(RoamingCreditCounted)
    PEV_APPLY(IntervalsRecorded)
    PEV_APPLY(LinesBooked)
#undef PEV_APPLY
    case E::NONE:
      break;
  }
  PEV_ASSERT(false && "event type outside the schema");
}

}  // namespace pevledger::core
