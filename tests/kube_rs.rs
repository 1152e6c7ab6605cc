//! kube-rs against `keelson server`: a watcher + reflector follows creates, updates and
//! deletes, and recovers by relisting once its resourceVersion is gone from the watch cache
//! and compacted out of the store.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{reflector, watcher, WatchStreamExt as _};
use kube::{Client, Config, ResourceExt as _};

use common::server::KeelsonServer;

async fn poll<F: FnMut() -> bool>(s: &KeelsonServer, what: &str, timeout: Duration, mut f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}\nserver log:\n{}",
            s.full_log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn cm(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("v".to_string(), value.to_string())])),
        ..Default::default()
    }
}

#[test]
fn reflector_follows_changes_and_relists_after_compaction() {
    let mut s = KeelsonServer::start(env!("CARGO_BIN_EXE_keelson"), &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = async {
        let kc = Kubeconfig::read_from(s.kubeconfig()).expect("kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("config");
        let client = Client::try_from(config).expect("client");
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");

        let (reader, writer) = reflector::store::<ConfigMap>();
        let inits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&inits);
        // Watches end after 2 s, so the watcher comes back with its last resourceVersion.
        let stream = watcher(cms.clone(), watcher::Config::default().timeout(2))
            .default_backoff()
            .reflect(writer)
            .for_each(move |ev| {
                if matches!(ev, Ok(watcher::Event::Init)) {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                async {}
            });
        let task = tokio::spawn(stream);
        reader.wait_until_ready().await.expect("reflector ready");

        let value_of = |name: &str| {
            reader
                .state()
                .iter()
                .find(|c| c.name_any() == name)
                .and_then(|c| c.data.as_ref().and_then(|d| d.get("v").cloned()))
        };
        cms.create(&PostParams::default(), &cm("a", "1"))
            .await
            .expect("create a");
        poll(&s, "the reflector sees a", Duration::from_secs(20), || {
            value_of("a").as_deref() == Some("1")
        })
        .await;
        let mut a = cms.get("a").await.expect("get a");
        a.data = Some(BTreeMap::from([("v".to_string(), "2".to_string())]));
        cms.replace("a", &PostParams::default(), &a)
            .await
            .expect("replace a");
        poll(
            &s,
            "the reflector sees a's update",
            Duration::from_secs(20),
            || value_of("a").as_deref() == Some("2"),
        )
        .await;
        cms.delete("a", &DeleteParams::default())
            .await
            .expect("delete a");
        poll(
            &s,
            "the reflector sees a deleted",
            Duration::from_secs(20),
            || value_of("a").is_none(),
        )
        .await;
        let relists_before = inits.load(Ordering::SeqCst);

        // Writes elsewhere move the store past the configmaps' last resourceVersion; compact the
        // store there, and restart the server: its watch cache starts at the current revision, so
        // the watcher, reconnecting with its old resourceVersion, gets 410 Gone and must relist.
        for i in 0..20 {
            let sec = Secret {
                metadata: ObjectMeta {
                    name: Some(format!("filler-{i}")),
                    ..Default::default()
                },
                ..Default::default()
            };
            secrets
                .create(&PostParams::default(), &sec)
                .await
                .expect("filler");
        }
        let mut etcd =
            etcd_client::Client::connect([format!("http://127.0.0.1:{}", s.client_port)], None)
                .await
                .expect("etcd client");
        let rev = etcd
            .get("/", None)
            .await
            .expect("get")
            .header()
            .expect("header")
            .revision();
        etcd.compact(rev, None).await.expect("compact");
        drop(etcd);
        tokio::task::block_in_place(|| s.restart());
        cms.create(&PostParams::default(), &cm("b", "1"))
            .await
            .expect("create b");
        poll(&s, "the watcher relists", Duration::from_secs(30), || {
            inits.load(Ordering::SeqCst) > relists_before
        })
        .await;
        poll(
            &s,
            "the reflector sees b after relisting",
            Duration::from_secs(30),
            || value_of("b").as_deref() == Some("1"),
        )
        .await;
        let listed: Vec<String> = cms
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        let mut reflected: Vec<String> = reader.state().iter().map(|c| c.name_any()).collect();
        reflected.sort();
        assert_eq!(
            reflected, listed,
            "the reflector converges on the server's list"
        );
        task.abort();
    };
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(120), body).await })
        .expect("test timed out");
}
