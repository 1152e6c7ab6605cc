//! The namespace controller: a namespace being deleted has everything in it deleted, then
//! its `kubernetes` finalizer removed (`PUT …/finalize`), after which the apiserver removes
//! it. Also keeps a `default` ServiceAccount in every active namespace.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use kube::Client;
use tokio::sync::watch;

use crate::informer::{Change, Informer};
use crate::queue::{run_workers, Next, Queue, Reconcile};
use crate::resources;

/// The finalizer the namespace controller owns.
pub const FINALIZER: &str = "kubernetes";

/// How soon a namespace whose content is still going away is looked at again.
const RECHECK: Duration = Duration::from_secs(2);

/// The ConfigMap with the cluster CA in every namespace.
const ROOT_CA: &str = "kube-root-ca.crt";

pub struct NamespaceController {
    client: Client,
    namespaces: Arc<Informer<Namespace>>,
    accounts: Arc<Informer<ServiceAccount>>,
    queue: Queue,
    /// The cluster CA published as `kube-root-ca.crt` (Kubernetes' root-CA publisher).
    root_ca: Option<String>,
}

impl NamespaceController {
    pub fn new(client: Client, root_ca: Option<String>) -> Arc<NamespaceController> {
        let me = Arc::new(NamespaceController {
            client,
            namespaces: Informer::new(),
            accounts: Informer::new(),
            queue: Queue::new(),
            root_ca,
        });
        let q = me.queue.clone();
        me.namespaces.on_change(move |c| {
            if let Change::Applied { new, .. } = c {
                if let Some(n) = &new.metadata.name {
                    q.add(n.clone());
                }
            }
        });
        let q = me.queue.clone();
        me.accounts.on_change(move |c| {
            if let Change::Deleted(sa) = c {
                if sa.metadata.name.as_deref() == Some("default") {
                    if let Some(ns) = &sa.metadata.namespace {
                        q.add(ns.clone());
                    }
                }
            }
        });
        me
    }

    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.namespaces.start_all(&self.client, &stop);
        self.accounts.start(
            Api::all(self.client.clone()),
            watcher::Config::default().fields("metadata.name=default"),
            stop.clone(),
        );
        self.namespaces.wait_synced(stop.clone()).await;
        self.accounts.wait_synced(stop.clone()).await;
        let keys = self.namespaces.keys();
        run_workers(
            "namespace",
            Arc::clone(&self),
            self.queue.clone(),
            2,
            keys,
            stop,
        )
        .await;
    }

    async fn sync(&self, name: &str) -> Result<Next, kube::Error> {
        let Some(ns) = self.namespaces.get("", name) else {
            return Ok(Next::Done);
        };
        if ns.metadata.deletion_timestamp.is_none() {
            self.ensure_default_account(name).await?;
            self.ensure_root_ca(name).await?;
            return Ok(Next::Done);
        }
        let finalizers = ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == FINALIZER) {
            return Ok(Next::Done);
        }
        let remaining = self.delete_content(name).await?;
        if remaining > 0 {
            tracing::debug!(
                namespace = name,
                remaining,
                "waiting for the namespace's content to go"
            );
            return Ok(Next::After(RECHECK));
        }
        let mut next = (*ns).clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api
            .replace_subresource("finalize", name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = name, "namespace emptied and finalized");
                Ok(Next::Done)
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Next::Done),
            Err(e) => Err(e),
        }
    }

    /// Deletes every object in the namespace; returns how many are still there.
    async fn delete_content(&self, ns: &str) -> Result<usize, kube::Error> {
        let mut remaining = 0;
        for res in resources::deletable(&self.client).await? {
            if !res.namespaced {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &res.ar);
            let list = api.list_metadata(&ListParams::default()).await?;
            for item in list.items {
                remaining += 1;
                if item.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let Some(name) = item.metadata.name else {
                    continue;
                };
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..Default::default()
                };
                match api.delete(&name, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Events are not in the deletable set (nothing owns them) but belong to the namespace.
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), ns);
        let listed = events.list_metadata(&ListParams::default()).await?;
        if !listed.items.is_empty() {
            remaining += listed.items.len();
            let _ = events
                .delete_collection(&DeleteParams::default(), &ListParams::default())
                .await?;
        }
        Ok(remaining)
    }

    /// Creates or corrects the namespace's `kube-root-ca.crt` ConfigMap (`ca.crt`: the cluster
    /// CA), which every pod's projected ServiceAccount volume reads.
    async fn ensure_root_ca(&self, ns: &str) -> Result<(), kube::Error> {
        let Some(ca) = &self.root_ca else {
            return Ok(());
        };
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), ns);
        let want = std::collections::BTreeMap::from([("ca.crt".to_string(), ca.clone())]);
        let cm = k8s_openapi::api::core::v1::ConfigMap {
            metadata: ObjectMeta {
                name: Some(ROOT_CA.into()),
                namespace: Some(ns.into()),
                annotations: Some(std::collections::BTreeMap::from([(
                    "kubernetes.io/description".to_string(),
                    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
                )])),
                ..Default::default()
            },
            data: Some(want.clone()),
            ..Default::default()
        };
        let done = |r: Result<_, kube::Error>| match r {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            // The namespace started terminating meanwhile.
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Ok(()),
            Err(e) => Err(e),
        };
        match api.get_opt(ROOT_CA).await? {
            None => done(api.create(&PostParams::default(), &cm).await.map(|_| ())),
            Some(have) if have.data.as_ref() == Some(&want) => Ok(()),
            Some(_) => done(
                api.patch(
                    ROOT_CA,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(serde_json::json!({"data": want})),
                )
                .await
                .map(|_| ()),
            ),
        }
    }

    async fn ensure_default_account(&self, ns: &str) -> Result<(), kube::Error> {
        if self.accounts.get(ns, "default").is_some() {
            return Ok(());
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".into()),
                namespace: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            // The namespace started terminating meanwhile.
            Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Reconcile for NamespaceController {
    fn reconcile<'a>(
        &'a self,
        key: &'a str,
    ) -> impl std::future::Future<Output = Result<Next, kube::Error>> + Send + 'a {
        self.sync(key)
    }
}
