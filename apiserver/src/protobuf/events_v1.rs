//! Conversions of the events/v1 messages.

use super::*;
use k8s_pb::api::events::v1 as pb;

messages! {
    "io.k8s.api.events.v1";
    Event {
        metadata, event_time, series, reporting_controller: omitempty,
        reporting_instance: omitempty, action: omitempty, reason: omitempty, regarding, related,
        note: omitempty, r#type: omitempty, deprecated_source, deprecated_first_timestamp,
        deprecated_last_timestamp, deprecated_count: omitempty,
    }
    EventSeries {
        count, last_observed_time,
    }
}
