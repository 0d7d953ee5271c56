#include "portal/directory.hpp"

#include <algorithm>

#include "base/time.hpp"
#include "storage/event_log.hpp"

namespace pevledger::portal {
namespace {

namespace fb = pevledger::schema;

std::string s(const flatbuffers::String* str) { return str == nullptr ? std::string() : str->str(); }

bool counts_as_usage(const fb::LineBooked& line) {
  return line.kind() == fb::LineKind::charge ||
         (line.kind() == fb::LineKind::adjustment && line.adjusts() == fb::LineKind::charge);
}

bool is_credit(const fb::LineBooked& line) {
  return line.kind() == fb::LineKind::credit ||
         (line.kind() == fb::LineKind::adjustment && line.adjusts() == fb::LineKind::credit);
}

}  // namespace

status directory::fold(const storage::event_log& log) {
  const std::uint64_t head = log.last_seq().value();
  if (head <= folded_) return status::ok();
  const std::uint64_t last = std::min(head, folded_ + fold_records_max);
  PEV_RETURN_IF_ERROR(log.scan(log_seq(folded_ + 1), log_seq(last), [&](const fb::Record& r) -> status {
    apply(*r.body_nested_root(), unix_seconds(r.at()));
    return status::ok();
  }));
  folded_ = last;
  return status::ok();
}

const principal* directory::token_principal(const std::string& token_sha256) const {
  return find(tokens_, token_sha256);
}

bool directory::may_read_account(const principal& who, const std::string& id) const {
  if (!who.is_utility()) return id == who.account;
  const account_entry* a = account(id);
  return a != nullptr && a->utility == who.utility;
}

bool directory::may_read_session(const principal& who, const std::string& id) const {
  const session_entry* ss = session(id);
  if (ss == nullptr) return false;
  if (!who.is_utility()) return std::find(ss->accounts.begin(), ss->accounts.end(), who.account) != ss->accounts.end();
  if (ss->utility == who.utility) return true;
  // A roaming session: the home utility of the paying account sees it too.
  const account_entry* payer = account(ss->payer_account);
  return payer != nullptr && payer->utility == who.utility;
}

std::int64_t directory::local_day(const std::string& id, unix_seconds t) const {
  const utility_entry* u = utility(id);
  const std::int64_t offset = u != nullptr && u->zone ? u->zone->offset_at(t) : 0;
  return split_days(t.value() + offset).days;
}

void directory::relate(session_entry& ss, const std::string& session_id, const std::string& id) {
  if (id.empty() || std::find(ss.accounts.begin(), ss.accounts.end(), id) != ss.accounts.end()) return;
  ss.accounts.push_back(id);
  if (auto a = accounts_.find(id); a != accounts_.end()) {
    a->second.sessions.push_back(session_id);
    if (!ss.ended) a->second.open_sessions.insert(session_id);
  }
}

void directory::book(const fb::LineBooked& line) {
  const std::string aid = s(line.account());
  auto a = accounts_.find(aid);
  if (a == accounts_.end()) return;
  if (auto p = parse_month(line.period()->string_view())) a->second.periods.try_emplace(p->index(), false);
  if (counts_as_usage(line)) {
    usage_total& day = a->second.usage[local_day(a->second.utility, unix_seconds(line.interval_start()))][s(line.window())];
    day.wh += line.wh();
    day.amount_micro += line.amount_micro();
  }
  auto ss = sessions_.find(s(line.session()));
  if (ss == sessions_.end()) return;
  if (is_credit(line)) {
    ss->second.credit_micro += line.amount_micro();
    return;
  }
  auto& booked = ss->second.booked_micro;  // one entry per account, two or three at most
  auto it = std::find_if(booked.begin(), booked.end(), [&](const auto& b) { return b.first == aid; });
  if (it == booked.end()) booked.emplace_back(aid, line.amount_micro());
  else it->second += line.amount_micro();
}

void directory::apply(const fb::EventBody& body, unix_seconds at) {
  using E = fb::Event;
  switch (body.event_type()) {
    case E::UtilityRegistered: {
      const auto* e = body.event_as_UtilityRegistered();
      utility_entry& u = utilities_[s(e->utility())];
      u.timezone = s(e->timezone());
      if (e->zone() != nullptr) {
        std::vector<core::zone_rules::transition> table;
        table.reserve(e->zone()->size());
        for (const fb::ZoneTransition* z : *e->zone()) table.push_back({z->at(), z->offset_s()});
        if (auto rules = core::zone_rules::from_transitions(std::move(table))) u.zone = std::move(rules.value());
      }
      return;
    }
    case E::AccountOpened: {
      const auto* e = body.event_as_AccountOpened();
      account_entry& a = accounts_[s(e->account())];
      a.utility = s(e->utility());
      a.customer = s(e->customer());
      a.kind = e->kind();
      utilities_[a.utility].accounts.push_back(s(e->account()));
      return;
    }
    case E::PremiseRegistered: {
      const auto* e = body.event_as_PremiseRegistered();
      const std::string id = s(e->premise());
      premises_[id] = {s(e->utility()), s(e->account()), s(e->default_tariff()), e->kind(), e->guest_policy()};
      if (auto a = accounts_.find(s(e->account())); a != accounts_.end()) a->second.premises.push_back(id);
      return;
    }
    case E::PevEnrolled: {
      const auto* e = body.event_as_PevEnrolled();
      const std::string id = s(e->pev());
      pevs_[id] = {s(e->account()), s(e->tariff()), s(e->home_premise()), e->allow_roaming()};
      if (auto a = accounts_.find(s(e->account())); a != accounts_.end()) a->second.pevs.push_back(id);
      return;
    }
    case E::SessionPlugged: {  // the premise's account sees what charges at its premise
      const auto* e = body.event_as_SessionPlugged();
      const std::string id = s(e->session());
      session_entry& ss = sessions_[id];
      ss.premise = s(e->premise());
      ss.utility = s(e->utility());
      ss.began = at;
      if (const premise_entry* p = premise(ss.premise)) relate(ss, id, p->account);
      return;
    }
    case E::SessionStarted: {
      const auto* e = body.event_as_SessionStarted();
      const std::string id = s(e->session());
      session_entry& ss = sessions_[id];
      ss.premise = s(e->premise());
      ss.utility = s(e->utility());
      ss.began = at;
      if (const premise_entry* p = premise(ss.premise)) relate(ss, id, p->account);  // the station's operator
      relate(ss, id, s(e->account()));
      return;
    }
    case E::SessionDecided: {
      const auto* e = body.event_as_SessionDecided();
      const std::string id = s(e->session());
      session_entry& ss = sessions_[id];
      ss.decided = true;
      ss.payer = e->payer();
      ss.reason = e->reason();
      ss.payer_account = s(e->payer_account());
      ss.pev = s(e->pev());
      relate(ss, id, ss.payer_account);
      relate(ss, id, s(e->credit_account()));
      return;
    }
    case E::SessionUnplugged: {
      const std::string id = s(body.event_as_SessionUnplugged()->session());
      auto ss = sessions_.find(id);
      if (ss == sessions_.end()) return;
      ss->second.ended = at;
      for (const std::string& aid : ss->second.accounts)
        if (auto a = accounts_.find(aid); a != accounts_.end()) a->second.open_sessions.erase(id);
      return;
    }
    case E::IntervalRecorded: {
      const fb::IntervalReading* r = body.event_as_IntervalRecorded()->reading();
      if (auto ss = sessions_.find(s(r->session())); ss != sessions_.end()) ss->second.wh += r->wh();
      return;
    }
    case E::IntervalsRecorded: {
      for (const fb::IntervalReading* r : *body.event_as_IntervalsRecorded()->readings())
        if (auto ss = sessions_.find(s(r->session())); ss != sessions_.end()) ss->second.wh += r->wh();
      return;
    }
    case E::LineBooked: book(*body.event_as_LineBooked()); return;
    case E::LinesBooked:
      for (const fb::LineBooked* line : *body.event_as_LinesBooked()->lines()) book(*line);
      return;
    case E::BillIssued: {
      const auto* e = body.event_as_BillIssued();
      auto a = accounts_.find(s(e->account()));
      if (a == accounts_.end()) return;
      if (auto p = parse_month(e->period()->string_view())) a->second.periods[p->index()] = true;
      return;
    }
    case E::AccessGranted: {
      const auto* e = body.event_as_AccessGranted();
      tokens_[s(e->token_sha256())] = {s(e->utility()), s(e->account())};
      return;
    }
    case E::AccessRevoked: {
      const auto* e = body.event_as_AccessRevoked();
      auto t = tokens_.find(s(e->token_sha256()));
      if (t != tokens_.end() && t->second.utility == s(e->utility()) && t->second.account == s(e->account()))
        tokens_.erase(t);
      return;
    }
    default: return;  // nothing the API reads
  }
}

}  // namespace pevledger::portal
