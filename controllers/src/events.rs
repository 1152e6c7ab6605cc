//! Events about what the controllers do (core/v1 Events, which `kubectl describe` lists).
//! Repeats of one (object, reason, message) within ten minutes bump the first event's count,
//! like client-go's event correlator, instead of writing a new object each time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;

const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// How often expired entries are dropped from the dedup map (a scan of the whole map per
/// event made recording O(events²) in a burst).
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Normal,
    Warning,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Normal => "Normal",
            Kind::Warning => "Warning",
        }
    }
}

struct Seen {
    name: String,
    namespace: String,
    count: i32,
    at: Instant,
}

/// Writes events on behalf of one component (cheap to clone).
/// Recent events by (uid, reason, message), for counting repeats.
struct Dedup {
    events: HashMap<String, Seen>,
    pruned: Instant,
}

impl Dedup {
    fn new() -> Dedup {
        Dedup {
            events: HashMap::new(),
            pruned: Instant::now(),
        }
    }

    /// The entry of `key` if it is recent at `now`, after dropping expired entries now and
    /// then.
    fn recent(&mut self, key: &str, now: Instant) -> Option<&mut Seen> {
        let fresh = |s: &Seen| now.saturating_duration_since(s.at) < DEDUP_WINDOW;
        if now.saturating_duration_since(self.pruned) >= PRUNE_EVERY {
            self.events.retain(|_, s| fresh(s));
            self.pruned = now;
        }
        self.events.get_mut(key).filter(|s| fresh(s))
    }
}

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: String,
    seen: Arc<Mutex<Dedup>>,
}

/// A reference to an object for an event's `involvedObject`.
pub fn reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: obj.meta().resource_version.clone(),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(client: Client, component: &str) -> Recorder {
        Recorder {
            client,
            component: component.into(),
            seen: Arc::new(Mutex::new(Dedup::new())),
        }
    }

    /// Records an event about `obj` (failures are logged: an event is never worth failing
    /// the action it describes).
    pub async fn record<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        kind: Kind,
        reason: &str,
        message: &str,
    ) {
        let r = reference(obj);
        if let Err(e) = self.write(r, kind, reason, message).await {
            tracing::debug!(error = %e, reason, "writing an event failed");
        }
    }

    async fn write(
        &self,
        r: ObjectReference,
        kind: Kind,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let ns = r.namespace.clone().unwrap_or_else(|| "default".into());
        let uid = r.uid.clone().unwrap_or_default();
        let dedup = format!("{uid}\x00{reason}\x00{message}");
        let now = jiff::Timestamp::now();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let repeat = {
            let mut seen = self.seen.lock();
            seen.recent(&dedup, Instant::now()).map(|s| {
                s.count += 1;
                (s.name.clone(), s.namespace.clone(), s.count)
            })
        };
        if let Some((name, namespace, count)) = repeat {
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            let patch = json!({"count": count, "lastTimestamp": Time(now)});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    self.seen.lock().events.remove(&dedup);
                }
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            r.name.clone().unwrap_or_default(),
            now.as_nanosecond()
        );
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: r,
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(kind.as_str().into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            action: Some(reason.into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            ..Default::default()
        };
        let created = api.create(&PostParams::default(), &ev).await?;
        self.seen.lock().events.insert(
            dedup,
            Seen {
                name: created.name_any(),
                namespace: ns,
                count: 1,
                at: Instant::now(),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(at: Instant) -> Seen {
        Seen {
            name: "e".into(),
            namespace: "default".into(),
            count: 1,
            at,
        }
    }

    #[test]
    fn only_recent_events_count_as_repeats_and_old_ones_are_dropped() {
        let start = Instant::now();
        let mut d = Dedup::new();
        d.events.insert("old".into(), seen(start));
        let later = start + Duration::from_secs(5);
        d.events.insert("new".into(), seen(later));
        assert!(d.recent("old", later).is_some());
        assert!(d.recent("missing", later).is_none());
        // Past the window of "old" but within that of "new".
        let expired = start + DEDUP_WINDOW + Duration::from_secs(1);
        assert!(
            d.recent("old", expired).is_none(),
            "expired entries are not repeats"
        );
        assert!(d.recent("new", expired).is_some());
        // The scan ran (more than PRUNE_EVERY after the last one) and dropped "old".
        assert_eq!(d.events.len(), 1);
        assert!(d.events.contains_key("new"));
        // Within PRUNE_EVERY of that scan nothing is scanned again.
        d.events.insert("stale".into(), seen(start));
        assert!(d.recent("new", expired + Duration::from_secs(1)).is_some());
        assert_eq!(d.events.len(), 2);
    }
}
