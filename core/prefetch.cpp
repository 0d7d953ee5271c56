#include "core/prefetch.hpp"

#include "core/vin.hpp"
#include "schema/interval_batch_generated.h"

namespace pevledger::core {
namespace {

namespace fb = pevledger::schema;

std::string s(const flatbuffers::String* str) { return str == nullptr ? std::string() : str->str(); }

// Every lookup goes through the tables' `find`, which records a miss on a paged state.
struct reads {
  const ledger_state& st;

  void account(const std::string& id) const {
    if (!id.empty()) (void)st.accounts.find(id);
  }
  // A premise and the account its main meter bills.
  const premise_state* premise(const std::string& id) const {
    const premise_state* p = st.premises.find(id);
    if (p != nullptr) account(p->account);
    return p;
  }
  // Each account a card or an SMS number was ever assigned to (decide reads those valid at a time).
  void assignments(const card_state* card) const {
    if (card == nullptr) return;
    for (const card_assignment& a : card->history) account(a.account);
  }
  // What deciding a session (bind, unplug, a run past its deadline) and booking its readings read:
  // its premise and that premise's account, its card's accounts, the accounts its decision books to.
  void session_outcome(const session_state& ss) const {
    (void)premise(ss.premise);
    if (ss.is_public && !ss.card.empty()) assignments(st.cards.find(ss.card));
    if (ss.decision) {
      account(ss.decision->payer_account);
      account(ss.decision->credit_account);
    }
  }
  // A residential bind: the VIN's registration and PEV, and the PEV's paying account.
  void bound_pev(const std::string& vin) const {
    const pev_state* pev = st.pevs.find(vin);  // decide looks for a rebind whatever the VIN
    if (!is_valid_vin(vin)) return;
    (void)st.registrations.find(vin);
    if (pev != nullptr) account(pev->account);
  }
  // The undecided sessions a run may decide: those of `utility`, or of every utility when empty.
  void undecided_sessions(const std::string& utility) const {
    for (const auto& [uid, u] : st.utilities) {
      if (!utility.empty() && uid != utility) continue;
      for (const std::string& sid : u.undecided_sessions)
        if (const session_state* ss = st.sessions.find(sid)) session_outcome(*ss);
    }
  }
  void device(const std::string& id) const {
    if (!id.empty()) (void)st.devices.find(id);
  }
};

// An interval's reads: its device and session, its identity, and, for one not recorded yet (once
// that is known), its neighbours and what booking it reads.
void interval(const reads& r, const std::string& did, const std::string& sid, std::int64_t start) {
  const device_state* d = r.st.devices.find(did);
  const session_state* ss = r.st.sessions.find(sid);
  if (d == nullptr || ss == nullptr || d->kind != fb::DeviceKind::eumd) return;
  if (d->premise != ss->premise || (!ss->is_public && ss->eumd != did)) return;
  const auto known = r.st.intervals.known.find({did, start});
  if (known == r.st.intervals.known.end()) {
    (void)r.st.intervals.find(did, start);
    return;
  }
  if (known->second) return;  // a resend or a conflict: decided without the neighbours
  (void)r.st.intervals.neighbours(did, start);
  if (ss->decision) r.session_outcome(*ss);
}

// A batch's admission reads its device, its session and every reading's identity, in one round.
void interval_batch(const reads& r, const wire::IntervalBatch& b) {
  const std::string did = s(b.device()), sid = s(b.session());
  const device_state* d = r.st.devices.find(did);
  const session_state* ss = r.st.sessions.find(sid);
  if (d == nullptr || ss == nullptr || d->kind != fb::DeviceKind::eumd) return;
  if (d->premise != ss->premise || (!ss->is_public && ss->eumd != did)) return;
  for (const wire::IntervalRow* row : *b.readings()) (void)r.st.intervals.find(did, row->start());
}

}  // namespace

void prefetch(const ledger_state& state, const schema::command& cmd) {
  const reads r{state};
  using k = schema::command_kind;
  switch (cmd.kind) {
    case k::utility_register:
    case k::tariff_publish:
    case k::price_publish:
    case k::cpp_declare:
    case k::dlc_declare:
      return;  // utilities are always resident
    case k::account_open: return r.account(s(cmd.as<fb::AccountOpen>()->account()));
    case k::account_topup: return r.account(s(cmd.as<fb::AccountTopup>()->account()));
    case k::premise_register: {
      const auto* m = cmd.as<fb::PremiseRegister>();
      (void)state.premises.find(s(m->premise()));
      return r.account(s(m->account()));
    }
    case k::station_boot: (void)state.premises.find(s(cmd.as<fb::StationBoot>()->premise())); return;
    case k::station_activate: (void)state.premises.find(s(cmd.as<fb::StationActivate>()->premise())); return;
    case k::whitelist_push: (void)state.premises.find(s(cmd.as<fb::WhitelistPush>()->premise())); return;
    case k::device_commission: {
      const auto* m = cmd.as<fb::DeviceCommission>();
      (void)state.premises.find(s(m->premise()));
      return r.device(s(m->device()));
    }
    case k::device_configure: return r.device(s(cmd.as<fb::DeviceConfigure>()->device()));
    case k::pev_enroll: {
      const auto* m = cmd.as<fb::PevEnroll>();
      r.account(s(m->account()));
      (void)state.pevs.find(s(m->pev()));
      (void)state.premises.find(s(m->home_premise()));
      return;
    }
    case k::pev_setup: {
      const auto* m = cmd.as<fb::PevSetup>();
      (void)state.pevs.find(s(m->pev()));
      (void)state.premises.find(s(m->premise()));
      r.device(s(m->esci()));
      r.device(s(m->eumd()));
      return;
    }
    case k::session_plug: {
      const auto* m = cmd.as<fb::SessionPlug>();
      (void)state.sessions.find(s(m->session()));
      const premise_state* p = state.premises.find(s(m->premise()));
      if (m->eumd() != nullptr) return r.device(s(m->eumd()));
      if (p != nullptr && !p->eumds.empty()) r.device(p->eumds.front());
      return;
    }
    case k::session_bind: {
      const auto* m = cmd.as<fb::SessionBind>();
      const std::string vin = s(m->pev());
      const session_state* ss = state.sessions.find(s(m->session()));
      if (ss == nullptr || ss->is_public || ss->bound) return;
      r.bound_pev(vin);
      if (!ss->decision) r.session_outcome(*ss);
      return;
    }
    case k::session_start: {
      const auto* m = cmd.as<fb::SessionStart>();
      (void)state.sessions.find(s(m->session()));
      (void)state.premises.find(s(m->premise()));
      if (m->card() != nullptr) r.assignments(state.cards.find(s(m->card())));
      if (m->phone() != nullptr) r.assignments(state.phones.find(s(m->phone())));
      return;
    }
    case k::energy_request: (void)state.sessions.find(s(cmd.as<fb::EnergyRequest>()->session())); return;
    case k::meter_interval: {
      const auto* m = cmd.as<fb::MeterInterval>();
      return interval(r, s(m->device()), s(m->session()), parse_timestamp(m->start()->string_view()).value().value());
    }
    case k::pev_total: (void)state.sessions.find(s(cmd.as<fb::PevTotal>()->session())); return;
    case k::session_unplug: {
      const session_state* ss = state.sessions.find(s(cmd.as<fb::SessionUnplug>()->session()));
      if (ss != nullptr && !ss->unplugged) r.session_outcome(*ss);
      return;
    }
    case k::session_timeout: {
      const session_state* ss = state.sessions.find(s(cmd.as<fb::SessionTimeout>()->session()));
      if (ss != nullptr && !ss->decision) r.session_outcome(*ss);
      return;
    }
    case k::card_assign: {
      const auto* m = cmd.as<fb::CardAssign>();
      r.account(s(m->account()));
      (void)state.cards.find(s(m->card()));
      return;
    }
    case k::card_revoke: (void)state.cards.find(s(cmd.as<fb::CardRevoke>()->card())); return;
    case k::phone_assign: {
      const auto* m = cmd.as<fb::PhoneAssign>();
      r.account(s(m->account()));
      (void)state.phones.find(s(m->phone()));
      return;
    }
    case k::phone_revoke: (void)state.phones.find(s(cmd.as<fb::PhoneRevoke>()->phone())); return;
    case k::access_grant:
    case k::access_revoke: {
      const auto* account = cmd.kind == k::access_grant ? cmd.as<fb::AccessGrant>()->account()
                                                         : cmd.as<fb::AccessRevoke>()->account();
      if (account != nullptr) r.account(s(account));
      return;
    }
    case k::bill_run: {
      const std::string uid = s(cmd.as<fb::BillRun>()->utility());
      auto u = state.utilities.find(uid);
      if (u == state.utilities.end()) return;
      r.undecided_sessions(uid);
      for (const std::string& aid : u->second.accounts) r.account(aid);
      return;
    }
    case k::settlement_run: return r.undecided_sessions("");
    case k::interval_batch: return interval_batch(r, *cmd.as<wire::IntervalBatch>());
  }
}

void prefetch_reading(const ledger_state& state, const schema::command& batch, std::size_t index) {
  const auto& b = *batch.as<wire::IntervalBatch>();
  PEV_ASSERT(index < b.readings()->size());
  interval(reads{state}, s(b.device()), s(b.session()),
           b.readings()->Get(static_cast<flatbuffers::uoffset_t>(index))->start());
}

}  // namespace pevledger::core
