//! A daemon set's history: one `apps/v1` ControllerRevision per distinct pod template,
//! named `<daemonset>-<hash>`, whose `data` is the patch that puts that template back
//! (`{"spec":{"template":{..., "$patch":"replace"}}}`, which `kubectl rollout undo` applies)
//! and whose `revision` orders them. Pods carry the hash of the revision they were made from
//! in the `controller-revision-hash` label.
//!
//! [`construct`] is Kubernetes' `constructHistory` as a pure function: claim revisions
//! (adopt orphans the selector matches, release owned ones it no longer matches), find the
//! revision whose data equals the current template (several: keep the newest, the others are
//! duplicates to delete after moving their pods' hash label over), bump its revision number
//! past every other one (a rollback makes an old template current again), or describe the
//! revision to create. [`cleanup`] picks the old revisions beyond `revisionHistoryLimit` that
//! no live pod still refers to.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{json, Value};

use crate::replicaset::diff::{controller_ref, selector_matches};

/// The label naming a pod's (and a revision's) template hash.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// Kubernetes' default `revisionHistoryLimit` for daemon sets.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// The longest name prefix of a revision (Kubernetes' `ControllerRevisionName`).
const MAX_PREFIX: usize = 223;

/// Characters a hash is spelled with (Kubernetes' `rand.SafeEncodeString` alphabet: no
/// vowels, no look-alikes, so a hash never spells a word).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv32a(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The hash of a pod template (and the collision count, when set): FNV-1a over the
/// template's JSON, spelled like Kubernetes spells its hashes. Kubernetes hashes a Go-specific
/// dump of the object instead, so the values differ from what kube-controller-manager would
/// compute for the same template; they are stable across keelson restarts, which is what
/// matters.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serializing a k8s-openapi struct cannot fail; an empty input would still hash.
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(&bytes, 0x811c_9dc5);
    if let Some(c) = collision_count {
        let mut cc = [0u8; 8];
        cc[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(&cc, h);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(ALPHANUMS[usize::from(b) % ALPHANUMS.len()]))
        .collect()
}

/// `<prefix>-<hash>` with the prefix cut to 223 bytes.
pub fn revision_name(ds_name: &str, hash: &str) -> String {
    let mut cut = ds_name.len().min(MAX_PREFIX);
    while !ds_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &ds_name[..cut])
}

/// The `data` of the revision for the daemon set's current template.
pub fn revision_data(ds: &DaemonSet) -> Value {
    let template = ds.spec.as_ref().map(|s| &s.template);
    let mut t = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// Whether a revision holds the daemon set's current template.
pub fn matches(ds: &DaemonSet, rev: &ControllerRevision) -> bool {
    rev.data.as_ref().is_some_and(|d| d.0 == revision_data(ds))
}

/// The hash a revision stands for: its `controller-revision-hash` label, else its name
/// (what Kubernetes labels an unlabelled revision with).
pub fn hash_of(rev: &ControllerRevision) -> String {
    rev.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .cloned()
        .unwrap_or_else(|| rev.metadata.name.clone().unwrap_or_default())
}

/// A controller ownerReference to the daemon set.
pub fn owner_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The revision to create for the daemon set's current template.
pub fn new_revision(ds: &DaemonSet, revision: i64) -> ControllerRevision {
    let spec = ds.spec.as_ref();
    let collision = ds.status.as_ref().and_then(|s| s.collision_count);
    let template = spec.map(|s| s.template.clone()).unwrap_or_default();
    let hash = template_hash(&template, collision);
    let mut labels: BTreeMap<String, String> = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    let name = ds.metadata.name.as_deref().unwrap_or_default();
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(name, &hash)),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![owner_ref(ds)]),
            ..Default::default()
        },
        data: Some(RawExtension(revision_data(ds))),
        revision,
    }
}

/// An old (not current) revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Old {
    pub name: String,
    pub hash: String,
    pub revision: i64,
}

/// The current revision.
#[derive(Debug, Clone, PartialEq)]
pub enum Current {
    /// It exists; patch its `revision` to `bump_to` when set.
    Existing {
        name: String,
        hash: String,
        bump_to: Option<i64>,
    },
    /// It must be created.
    Create(Box<ControllerRevision>),
}

/// What [`construct`] found and decided.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPlan {
    /// Orphan revisions to adopt (add a controller ownerReference).
    pub adopt: Vec<String>,
    /// Owned revisions the selector no longer matches (remove the ownerReference).
    pub release: Vec<String>,
    pub current: Current,
    /// Other revisions with the current template: (name, hash) to delete once pods labelled
    /// with their hash carry the current revision's hash.
    pub duplicates: Vec<(String, String)>,
    /// Old revisions, oldest first.
    pub old: Vec<Old>,
}

/// Kubernetes' `constructHistory` over the revisions in the daemon set's namespace.
pub fn construct(ds: &DaemonSet, revisions: &[&ControllerRevision]) -> HistoryPlan {
    let uid = ds.metadata.uid.as_deref().unwrap_or_default();
    let empty_sel = Default::default();
    let selector = ds.spec.as_ref().map_or(&empty_sel, |s| &s.selector);
    let no_labels = BTreeMap::new();
    let mut adopt = Vec::new();
    let mut release = Vec::new();
    let mut claimed: Vec<&ControllerRevision> = Vec::new();
    for rev in revisions {
        if rev.metadata.namespace != ds.metadata.namespace {
            continue;
        }
        let labels = rev.metadata.labels.as_ref().unwrap_or(&no_labels);
        let selected = selector_matches(selector, labels);
        let name = rev.metadata.name.clone().unwrap_or_default();
        match controller_ref(&rev.metadata) {
            Some(r) if !uid.is_empty() && r.uid == uid => {
                if selected {
                    claimed.push(rev);
                } else {
                    release.push(name);
                }
            }
            Some(_) => {}
            None => {
                if selected && !uid.is_empty() && rev.metadata.deletion_timestamp.is_none() {
                    adopt.push(name);
                    claimed.push(rev);
                }
            }
        }
    }
    let (mut current, mut old): (Vec<&ControllerRevision>, Vec<&ControllerRevision>) =
        claimed.into_iter().partition(|r| matches(ds, r));
    old.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let next = old.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
    // The newest duplicate is kept.
    current.sort_by(|a, b| {
        b.revision
            .cmp(&a.revision)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    let duplicates = current
        .iter()
        .skip(1)
        .map(|r| (r.metadata.name.clone().unwrap_or_default(), hash_of(r)))
        .collect();
    let current = match current.first() {
        Some(keep) => Current::Existing {
            name: keep.metadata.name.clone().unwrap_or_default(),
            hash: hash_of(keep),
            bump_to: (keep.revision < next).then_some(next),
        },
        None => Current::Create(Box::new(new_revision(ds, next))),
    };
    HistoryPlan {
        adopt,
        release,
        current,
        duplicates,
        old: old
            .iter()
            .map(|r| Old {
                name: r.metadata.name.clone().unwrap_or_default(),
                hash: hash_of(r),
                revision: r.revision,
            })
            .collect(),
    }
}

/// Old revisions to delete: the oldest beyond `revisionHistoryLimit`, skipping any whose
/// hash a live pod still carries (Kubernetes' `cleanupHistory`).
pub fn cleanup(ds: &DaemonSet, old: &[Old], live_hashes: &BTreeSet<String>) -> Vec<String> {
    let limit = ds
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .max(0);
    let mut to_kill = old
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    let mut out = Vec::new();
    for r in old {
        if to_kill == 0 {
            break;
        }
        if live_hashes.contains(&r.hash) {
            continue;
        }
        out.push(r.name.clone());
        to_kill -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ds(image: &str) -> DaemonSet {
        DaemonSet {
            metadata: ObjectMeta {
                name: Some("agent".into()),
                namespace: Some("default".into()),
                uid: Some("ds-uid".into()),
                generation: Some(1),
                ..Default::default()
            },
            spec: Some(DaemonSetSpec {
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "agent")])),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "agent")])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "agent".into(),
                            image: Some(image.into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    fn stored(ds: &DaemonSet, revision: i64) -> ControllerRevision {
        new_revision(ds, revision)
    }

    #[test]
    fn hash_is_stable_safe_and_template_sensitive() {
        let a = ds("img:1");
        let t = &a
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let h = template_hash(t, None);
        assert_eq!(h, template_hash(t, None));
        assert!(!h.is_empty());
        assert!(h.bytes().all(|b| ALPHANUMS.contains(&b)), "{h}");
        let b = ds("img:2");
        let t2 = b
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        assert_ne!(h, template_hash(&t2, None));
        assert_ne!(h, template_hash(t, Some(1)));
        assert_ne!(template_hash(t, Some(1)), template_hash(t, Some(2)));
        // FNV-1a reference values.
        assert_eq!(fnv32a(b"", 0x811c_9dc5), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a", 0x811c_9dc5), 0xe40c_292c);
    }

    #[test]
    fn names_are_cut() {
        assert_eq!(revision_name("agent", "abc"), "agent-abc");
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "h").len(), 223 + 2);
    }

    #[test]
    fn first_revision_is_created() {
        let d = ds("img:1");
        let h = construct(&d, &[]);
        let Current::Create(rev) = &h.current else {
            panic!("{h:?}")
        };
        assert_eq!(rev.revision, 1);
        let hash = hash_of(rev);
        assert_eq!(
            rev.metadata.name.as_deref(),
            Some(&*format!("agent-{hash}"))
        );
        assert_eq!(
            rev.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("agent")
        );
        assert!(matches(&d, rev));
        let data = rev.data.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        assert_eq!(data["spec"]["template"]["$patch"], json!("replace"));
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("img:1")
        );
    }

    #[test]
    fn existing_current_is_found_and_new_template_gets_next_revision() {
        let v1 = ds("img:1");
        let r1 = stored(&v1, 1);
        let h = construct(&v1, &[&r1]);
        assert_eq!(
            h.current,
            Current::Existing {
                name: r1.metadata.name.clone().unwrap_or_default(),
                hash: hash_of(&r1),
                bump_to: None
            }
        );
        assert!(h.old.is_empty());
        let v2 = ds("img:2");
        let h = construct(&v2, &[&r1]);
        let Current::Create(rev) = &h.current else {
            panic!("{h:?}")
        };
        assert_eq!(rev.revision, 2);
        assert_eq!(h.old.len(), 1);
        assert_eq!(h.old[0].revision, 1);
    }

    #[test]
    fn rollback_bumps_the_old_revision() {
        let r1 = stored(&ds("img:1"), 1);
        let r2 = stored(&ds("img:2"), 2);
        let h = construct(&ds("img:1"), &[&r1, &r2]);
        let Current::Existing { name, bump_to, .. } = &h.current else {
            panic!("{h:?}")
        };
        assert_eq!(Some(name), r1.metadata.name.as_ref());
        assert_eq!(*bump_to, Some(3));
        assert_eq!(
            h.old.iter().map(|o| o.revision).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn duplicates_keep_the_newest() {
        let v1 = ds("img:1");
        let mut dup = stored(&v1, 1);
        dup.metadata.name = Some("agent-dup".into());
        dup.metadata.labels = Some(labels(&[("app", "agent"), (HASH_LABEL, "dup")]));
        let keep = stored(&v1, 4);
        let old = stored(&ds("img:0"), 3);
        let h = construct(&v1, &[&dup, &keep, &old]);
        let Current::Existing { name, bump_to, .. } = &h.current else {
            panic!("{h:?}")
        };
        assert_eq!(Some(name), keep.metadata.name.as_ref());
        assert_eq!(*bump_to, None);
        assert_eq!(
            h.duplicates,
            vec![("agent-dup".to_string(), "dup".to_string())]
        );
    }

    #[test]
    fn claims_adopt_and_release() {
        let v1 = ds("img:1");
        let mut orphan = stored(&ds("img:0"), 1);
        orphan.metadata.owner_references = None;
        orphan.metadata.name = Some("orphan".into());
        let mut foreign = stored(&ds("img:7"), 9);
        if let Some(r) = foreign.metadata.owner_references.as_mut() {
            r[0].uid = "other".into();
        }
        let mut unselected = stored(&ds("img:8"), 2);
        unselected.metadata.name = Some("unselected".into());
        unselected.metadata.labels = Some(labels(&[("app", "other")]));
        let h = construct(&v1, &[&orphan, &foreign, &unselected]);
        assert_eq!(h.adopt, vec!["orphan".to_string()]);
        assert_eq!(h.release, vec!["unselected".to_string()]);
        assert_eq!(h.old.len(), 1);
        // The foreign revision's number does not count.
        let Current::Create(rev) = &h.current else {
            panic!("{h:?}")
        };
        assert_eq!(rev.revision, 2);
    }

    #[test]
    fn cleanup_keeps_the_limit_and_live_hashes() {
        let mut d = ds("img:1");
        if let Some(s) = d.spec.as_mut() {
            s.revision_history_limit = Some(1);
        }
        let old: Vec<Old> = (1..=4)
            .map(|i| Old {
                name: format!("r{i}"),
                hash: format!("h{i}"),
                revision: i,
            })
            .collect();
        let live = BTreeSet::from(["h1".to_string()]);
        assert_eq!(cleanup(&d, &old, &live), vec!["r2", "r3", "r4"]);
        if let Some(s) = d.spec.as_mut() {
            s.revision_history_limit = None;
        }
        assert!(cleanup(&d, &old, &live).is_empty());
    }
}
