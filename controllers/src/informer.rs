//! Shared informers: one watch per resource type, an in-memory copy of its objects indexed by
//! namespace, and synchronous change handlers (which only enqueue keys).
//!
//! This is client-go's SharedInformer in miniature. kube-runtime's reflector `Store` has no
//! namespace index (every lookup would scan every pod) and no hook that sees the previous
//! object, which controllers need to notice a pod leaving a selector.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// A change seen by an informer.
pub enum Change<'a, K> {
    /// Created or updated (`old` is None for a new object).
    Applied { old: Option<&'a K>, new: &'a K },
    /// Deleted (the last state seen).
    Deleted(&'a K),
}

type Handler<K> = Box<dyn Fn(Change<'_, K>) + Send + Sync>;

/// Objects by namespace ("" for cluster-scoped), then name.
type Objects<K> = HashMap<String, BTreeMap<String, Arc<K>>>;

/// One resource type's watched objects.
pub struct Informer<K> {
    objects: RwLock<Objects<K>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
    started: AtomicBool,
}

/// The informers the controllers of one leadership term share, like client-go's shared
/// informer factory: one watch and one cache of pods (and of nodes) in the process, however
/// many controllers read them. Each controller registers its handlers when it is made and
/// starts the informer when it runs; the first start wins.
#[derive(Clone)]
pub struct Shared {
    pub pods: Arc<Informer<Pod>>,
    pub nodes: Arc<Informer<Node>>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            pods: Informer::new(),
            nodes: Informer::new(),
        }
    }
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::new()
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects (the work-queue key).
pub fn key_of<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Splits a work-queue key into (namespace, name).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The object as an informer keeps it: without `metadata.managedFields`, which no controller
/// reads and which was the largest part of every cached pod (client-go's
/// `TransformStripManagedFields`, which kube-scheduler and kube-controller-manager use). An
/// update sent from a cached copy omits the field, and the apiserver then keeps the stored
/// entries.
fn trimmed<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

fn ns_name<K: Resource>(obj: &K) -> (String, String) {
    let meta = obj.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A new informer (not yet watching: register handlers, then [`Informer::start`]).
    pub fn new() -> Arc<Informer<K>> {
        let (synced, _) = watch::channel(false);
        Arc::new(Informer {
            objects: RwLock::new(HashMap::new()),
            handlers: RwLock::new(Vec::new()),
            synced,
            started: AtomicBool::new(false),
        })
    }

    /// Calls `f` for every change from now on (also for each object of every relist).
    pub fn on_change(&self, f: impl Fn(Change<'_, K>) + Send + Sync + 'static) {
        self.handlers.write().push(Box::new(f));
    }

    /// Starts watching `api` until `stop` turns true. Relists with back-off when the watch
    /// breaks (kube-runtime's watcher state machine). Starting a started informer does
    /// nothing (a shared informer is started by every controller that reads it).
    pub fn start(
        self: &Arc<Self>,
        api: Api<K>,
        config: watcher::Config,
        stop: watch::Receiver<bool>,
    ) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run(api, config, stop).await });
    }

    /// Starts watching every object of the type, in every namespace.
    pub fn start_all(self: &Arc<Self>, client: &kube::Client, stop: &watch::Receiver<bool>)
    where
        K: Resource<DynamicType = ()>,
    {
        self.start(
            Api::all(client.clone()),
            watcher::Config::default(),
            stop.clone(),
        );
    }

    async fn run(
        self: Arc<Self>,
        api: Api<K>,
        config: watcher::Config,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut buffer: Option<Objects<K>> = None;
        loop {
            let ev = tokio::select! {
                ev = stream.next() => ev,
                _ = stop.wait_for(|s| *s) => return,
            };
            match ev {
                None => return,
                Some(Err(e)) => tracing::debug!(error = %e, "watch failed; retrying"),
                Some(Ok(Event::Init)) => buffer = Some(HashMap::new()),
                Some(Ok(Event::InitApply(obj))) => {
                    let obj = trimmed(obj);
                    let (ns, name) = ns_name(&obj);
                    buffer
                        .get_or_insert_with(HashMap::new)
                        .entry(ns)
                        .or_default()
                        .insert(name, Arc::new(obj));
                }
                Some(Ok(Event::InitDone)) => {
                    let fresh = buffer.take().unwrap_or_default();
                    self.replace(fresh);
                    self.synced.send_replace(true);
                }
                Some(Ok(Event::Apply(obj))) => self.apply(trimmed(obj)),
                Some(Ok(Event::Delete(obj))) => self.delete(&obj),
            }
        }
    }

    fn apply(&self, obj: K) {
        let (ns, name) = ns_name(&obj);
        let new = Arc::new(obj);
        let old = self
            .objects
            .write()
            .entry(ns)
            .or_default()
            .insert(name, Arc::clone(&new));
        let handlers = self.handlers.read();
        for h in handlers.iter() {
            h(Change::Applied {
                old: old.as_deref(),
                new: &new,
            });
        }
    }

    fn delete(&self, obj: &K) {
        let (ns, name) = ns_name(obj);
        {
            let mut objects = self.objects.write();
            if let Some(m) = objects.get_mut(&ns) {
                m.remove(&name);
                if m.is_empty() {
                    objects.remove(&ns);
                }
            }
        }
        let handlers = self.handlers.read();
        for h in handlers.iter() {
            h(Change::Deleted(obj));
        }
    }

    /// Installs a relisted set, telling handlers about every object and every one that went.
    fn replace(&self, fresh: Objects<K>) {
        let old = std::mem::replace(&mut *self.objects.write(), fresh.clone());
        let handlers = self.handlers.read();
        for (ns, objs) in &old {
            for (name, o) in objs {
                if fresh.get(ns).is_none_or(|m| !m.contains_key(name)) {
                    for h in handlers.iter() {
                        h(Change::Deleted(o));
                    }
                }
            }
        }
        for (ns, objs) in &fresh {
            for (name, o) in objs {
                let prev = old.get(ns).and_then(|m| m.get(name));
                for h in handlers.iter() {
                    h(Change::Applied {
                        old: prev.map(|p| &**p),
                        new: o,
                    });
                }
            }
        }
    }

    /// Waits until the first list has been loaded (or `stop` turns true).
    pub async fn wait_synced(&self, mut stop: watch::Receiver<bool>) {
        let mut rx = self.synced.subscribe();
        tokio::select! {
            _ = rx.wait_for(|s| *s) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }

    /// Whether the first list has been loaded.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// One object by namespace ("" for cluster-scoped) and name.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        self.objects
            .read()
            .get(ns)
            .and_then(|m| m.get(name))
            .cloned()
    }

    /// The object a work-queue key names.
    pub fn get_key(&self, key: &str) -> Option<Arc<K>> {
        let (ns, name) = split_key(key);
        self.get(ns, name)
    }

    /// Every object in one namespace.
    pub fn list_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        self.objects
            .read()
            .get(ns)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects
            .read()
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// Every object's key.
    pub fn keys(&self) -> Vec<String> {
        self.list().iter().map(|o| key_of(&**o)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    #[test]
    fn cached_objects_drop_their_managed_fields_and_keep_the_rest() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("d".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    operation: Some("Update".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        };
        let kept = trimmed(pod.clone());
        assert_eq!(kept.metadata.managed_fields, None);
        let mut expected = pod;
        expected.metadata.managed_fields = None;
        assert_eq!(kept, expected);
        assert_eq!(ns_name(&kept), ("d".to_string(), "p".to_string()));
    }
}
