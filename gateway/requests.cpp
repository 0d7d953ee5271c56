#include "gateway/requests.hpp"

#include "schema/interval_batch_generated.h"

namespace pevledger::gateway {
namespace {

namespace p = pevledger::protocol;

std::string s(const flatbuffers::String* str) { return str == nullptr ? std::string() : str->str(); }

timestamp time_of(std::int64_t unix_s) { return timestamp(std::chrono::seconds(unix_s)); }

// The command body a device message asks for; nullopt for a message only the gateway sends.
std::optional<command::body_type> body_of(const p::Envelope& e) {
  using namespace commands;
  switch (e.message_type()) {
    case p::Message::Plug: {
      const auto& m = *e.message_as_Plug();
      std::optional<std::string> eumd;
      if (m.eumd() != nullptr) eumd = m.eumd()->str();
      return session_plug{s(m.session()), s(m.premise()), eumd};
    }
    case p::Message::Bind: return session_bind{s(e.message_as_Bind()->session()), s(e.message_as_Bind()->pev())};
    case p::Message::Setup: {
      const auto& m = *e.message_as_Setup();
      return pev_setup{s(m.pev()), s(m.premise()), s(m.esci()), s(m.eumd())};
    }
    case p::Message::EumdDetected: {
      const auto& m = *e.message_as_EumdDetected();
      return device_commission{s(m.premise()), s(m.eumd()), device_kind::eumd, std::nullopt};
    }
    case p::Message::EumdConfigured: {
      const auto& m = *e.message_as_EumdConfigured();
      return device_configure{s(m.eumd()), m.interval_s()};
    }
    case p::Message::EnergyRequest: {
      const auto& m = *e.message_as_EnergyRequest();
      return energy_request{s(m.session()), m.wh(), time_of(m.depart())};
    }
    case p::Message::PevTotal: return pev_total{s(e.message_as_PevTotal()->session()), e.message_as_PevTotal()->wh()};
    case p::Message::Unplug: return session_unplug{s(e.message_as_Unplug()->session())};
    case p::Message::CardSession: {
      const auto& m = *e.message_as_CardSession();
      return session_start{s(m.session()), s(m.premise()), s(m.card()), m.online(), std::nullopt};
    }
    default: return std::nullopt;
  }
}

}  // namespace

std::optional<device_request> request_of(const protocol::Envelope& envelope, bool from_operator,
                                         std::optional<frame_error>& error) {
  const bool operator_message = envelope.message_type() == p::Message::OperatorCommand ||
                                envelope.message_type() == p::Message::Clock;
  if (operator_message != from_operator) {
    error = frame_error{frame_errc::unexpected_message,
                        from_operator ? std::string("the back office sends only OperatorCommand and Clock, not ") +
                                            p::EnumNameMessage(envelope.message_type())
                                      : std::string(p::EnumNameMessage(envelope.message_type())) +
                                            " comes only from the back office"};
    return std::nullopt;
  }
  if (envelope.message_type() == p::Message::Clock) {
    if (envelope.id() == nullptr) {
      error = frame_error{frame_errc::unexpected_message, "Clock needs the envelope's id"};
      return std::nullopt;
    }
    return clock_tick{envelope.at()};
  }
  if (operator_message) return operator_line{envelope.message_as_OperatorCommand()->line()->string_view()};
  if (envelope.message_type() == p::Message::Intervals) {
    const auto* batch = envelope.message_as_Intervals()->batch();
    // An EUMD sends its own readings: the sender's name (what its MAC proves) is the batch's
    // device. A batch that does not verify is the engine's to refuse, with its reason.
    flatbuffers::Verifier verifier(batch->data(), batch->size());
    if (batch->size() >= 8 && wire::IntervalBatchBufferHasIdentifier(batch->data()) &&
        wire::VerifyIntervalBatchBuffer(verifier)) {
      const auto* device = wire::GetIntervalBatch(batch->data())->device();
      if (device == nullptr || device->string_view() != envelope.device()->string_view()) {
        error = frame_error{frame_errc::unexpected_message,
                            "device '" + envelope.device()->str() + "' sends only its own readings"};
        return std::nullopt;
      }
    }
    return interval_batch_bytes{{batch->data(), batch->size()}};
  }
  auto body = body_of(envelope);
  if (!body) {
    error = frame_error{frame_errc::unexpected_message,
                        std::string("a device does not send ") + p::EnumNameMessage(envelope.message_type())};
    return std::nullopt;
  }
  if (envelope.id() == nullptr) {
    error = frame_error{frame_errc::unexpected_message,
                        std::string(p::EnumNameMessage(envelope.message_type())) + " needs the envelope's id"};
    return std::nullopt;
  }
  return command{envelope.id()->str(), time_of(envelope.at()), std::move(*body)};
}

}  // namespace pevledger::gateway
