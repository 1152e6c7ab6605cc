//! ServiceAccounts as identities: the TokenRequest API (`serviceaccounts/<name>/token`),
//! authentication of the tokens it issues, and the ServiceAccount admission step that gives a
//! pod its account and the projected token volume.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::token::{Claims, ISSUER};
use crate::codec;
use crate::error::{ApiError, Cause, Result, Subject};
use crate::rest::{self, Req, User};
use crate::{meta, Api};

/// Where the kubelet mounts the token, the CA and the namespace.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap with the cluster CA every namespace has (`ca.crt`).
pub const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";
/// Kubernetes' default for the projected token (a little over an hour, so the kubelet's
/// refresh at 80 % is easy to tell from a client's own hour-long tokens).
const PROJECTED_EXPIRATION: i64 = 3607;
const MIN_EXPIRATION: i64 = 600;
const MAX_EXPIRATION: i64 = 1 << 32;

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

async fn stored(api: &Api, plural: &str, ns: &str, name: &str) -> Result<Option<Value>> {
    let def = api
        .registry
        .get("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not registered")))?;
    Ok(api
        .storage
        .get(&def.key(Some(ns), name), None, false)
        .await?
        .map(|s| s.obj))
}

/// `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`.
pub async fn token_request(api: &Api, ns: &str, name: &str, req: &Req) -> Result<Response> {
    let signer = api
        .config
        .authn
        .signer
        .as_ref()
        .ok_or_else(|| ApiError::internal("this server has no service-account key"))?;
    let mut body = codec::decode_object(req.header("content-type"), &req.body)?;
    let invalid = |field: &str, value: Value, detail: &str| {
        ApiError::invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            vec![Cause::invalid(field, &value, detail)],
        )
    };
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| invalid("spec.expirationSeconds", v.clone(), "must be an integer"))?,
    };
    if expiration < MIN_EXPIRATION {
        return Err(invalid(
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > MAX_EXPIRATION {
        return Err(invalid(
            "spec.expirationSeconds",
            json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    let audiences: Vec<String> = Some(meta::string_list(&spec, "audiences"))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    let sa = stored(api, "serviceaccounts", ns, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(Subject::new("", "serviceaccounts", name)))?;
    let mut pod = None;
    if let Some(r) = spec.get("boundObjectRef").filter(|r| !r.is_null()) {
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != "Pod" {
            return Err(invalid(
                "spec.boundObjectRef.kind",
                json!(kind),
                "supported values: \"Pod\"",
            ));
        }
        let pod_name = r.get("name").and_then(Value::as_str).unwrap_or("");
        let p = stored(api, "pods", ns, pod_name)
            .await?
            .ok_or_else(|| ApiError::NotFound(Subject::new("", "pods", pod_name)))?;
        let uid = meta::uid(&p).unwrap_or("").to_string();
        if let Some(want) = r
            .get("uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
        {
            if want != uid {
                return Err(ApiError::Conflict {
                    subject: Subject::new("", "pods", pod_name),
                    message: format!(
                        "the UID in the bound object reference ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
                    ),
                    causes: Vec::new(),
                });
            }
        }
        pod = Some((pod_name.to_string(), uid));
    }
    let now = unix_now();
    let claims = Claims {
        namespace: ns.to_string(),
        service_account: name.to_string(),
        service_account_uid: meta::uid(&sa).unwrap_or("").to_string(),
        pod: pod.clone(),
        audiences: audiences.clone(),
        expires: now + expiration,
    };
    let token = signer.issue(&claims, now)?;
    let mut spec_out = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some((pod_name, uid)) = &pod {
        spec_out["boundObjectRef"] =
            json!({"kind": "Pod", "apiVersion": "v1", "name": pod_name, "uid": uid});
    }
    body["apiVersion"] = json!("authentication.k8s.io/v1");
    body["kind"] = json!("TokenRequest");
    body["metadata"] = json!({"name": name, "namespace": ns, "creationTimestamp": rfc3339(now)});
    body["spec"] = spec_out;
    body["status"] = json!({"token": token, "expirationTimestamp": rfc3339(now + expiration)});
    Ok(rest::respond(
        StatusCode::CREATED,
        req.output()?,
        &body,
        &[],
    ))
}

/// The user of a ServiceAccount token, if this server signed it, it is valid for one of
/// `audiences` now, and the account (and the pod it is bound to) still exist with the same
/// UIDs, as Kubernetes checks — so deleting a pod revokes its tokens.
pub fn authenticate(api: &Api, token: &str, audiences: &[&str]) -> Option<User> {
    let signer = api.config.authn.signer.as_ref()?;
    let c = signer.verify(token, audiences, unix_now())?;
    let alive = |plural: &str, name: &str, uid: &str| {
        let def = api.registry.get("", "v1", plural)?;
        let (_, e) = api.cache.get(&def.key(Some(&c.namespace), name));
        let obj = e?.obj();
        (meta::uid(&obj) == Some(uid) && !meta::is_deleting(&obj)).then_some(())
    };
    alive(
        "serviceaccounts",
        &c.service_account,
        &c.service_account_uid,
    )?;
    if let Some((pod, uid)) = &c.pod {
        alive("pods", pod, uid)?;
    }
    Some(User {
        name: format!(
            "system:serviceaccount:{}:{}",
            c.namespace, c.service_account
        ),
        uid: c.service_account_uid.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", c.namespace),
            super::AUTHENTICATED.into(),
        ],
    })
}

/// The name of the ServiceAccount a pod runs as (`default` if it names none).
fn account_of(pod: &Value) -> &str {
    let spec = pod.get("spec");
    ["serviceAccountName", "serviceAccount"]
        .iter()
        .find_map(|f| {
            spec.and_then(|s| s.get(*f))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
}

/// ServiceAccount admission: the pod's account must exist (then see [`admit_pod`]). As in
/// Kubernetes the account is looked up in the watch cache, then in storage; `default`,
/// which the namespace controller creates a moment after its namespace, is looked for ten
/// times over one or two seconds before the pod is refused.
pub async fn admit(api: &Api, namespace: Option<&str>, pod: &mut Value) -> Result<()> {
    // A mirror pod runs as its static pod does, with no account (NodeRestriction refuses
    // one that names any).
    if super::node::is_mirror_pod(pod) {
        return Ok(());
    }
    let Some(ns) = namespace else {
        admit_pod(pod, None);
        return Ok(());
    };
    let name = account_of(pod).to_string();
    let automount = match account_automount(api, ns, &name).await? {
        Some(automount) => automount,
        None => {
            let pod_name = meta::name(pod).unwrap_or("");
            return Err(ApiError::Forbidden {
                subject: Subject::new("", "pods", pod_name),
                message: format!(
                    "pods {pod_name:?} is forbidden: error looking up service account {ns}/{name}: serviceaccount {name:?} not found"
                ),
            });
        }
    };
    admit_pod(pod, automount);
    Ok(())
}

/// The account's `automountServiceAccountToken` if it exists (`Some(None)`: it sets none),
/// or None if there is no such account.
async fn account_automount(api: &Api, ns: &str, name: &str) -> Result<Option<Option<bool>>> {
    let def = api
        .registry
        .get("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::internal("serviceaccounts are not registered"))?;
    let key = def.key(Some(ns), name);
    let automount = |obj: &Value| {
        obj.get("automountServiceAccountToken")
            .and_then(Value::as_bool)
    };
    if let (_, Some(e)) = api.cache.get(&key) {
        return Ok(Some(automount(&e.obj())));
    }
    let attempts = if name == "default" { 10 } else { 1 };
    for attempt in 0..attempts {
        if attempt > 0 {
            let ms = {
                use rand::Rng as _;
                rand::thread_rng().gen_range(100..200)
            };
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if let Some(stored) = api.storage.get(&key, None, false).await? {
            return Ok(Some(automount(&stored.obj)));
        }
    }
    Ok(None)
}

/// ServiceAccount admission for a new pod: `serviceAccountName` defaults to `default`, and
/// unless `automountServiceAccountToken` is false the pod gets a projected
/// `kube-api-access-<suffix>` volume (token, `ca.crt`, namespace) mounted read-only at
/// [`MOUNT_PATH`] in every container that does not mount something there already.
///
/// `account_automount` is the account's own `automountServiceAccountToken`, which applies
/// when the pod sets none (the pod's wins, as in Kubernetes).
pub fn admit_pod(pod: &mut Value, account_automount: Option<bool>) {
    let account = account_of(pod).to_string();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("serviceAccountName".into(), json!(account));
    spec.insert("serviceAccount".into(), json!(account));
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or(account_automount)
        .unwrap_or(true);
    if !automount {
        return;
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    let Some(volumes) = volumes.as_array_mut() else {
        return;
    };
    if volumes.iter().any(|v| {
        v.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with("kube-api-access-"))
    }) {
        return;
    }
    let suffix: String = {
        use rand::Rng as _;
        // Kubernetes' alphabet for generated names (no vowels, no look-alike digits).
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut rng = rand::thread_rng();
        (0..5)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let name = format!("kube-api-access-{suffix}");
    volumes.push(json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": PROJECTED_EXPIRATION, "path": "token"}},
                {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }));
    for list in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut() {
            let Some(c) = c.as_object_mut() else { continue };
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
            {
                continue;
            }
            mounts.push(json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_defaults_the_account_and_projects_the_token() {
        let mut pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}]}});
        admit_pod(&mut pod, None);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        let vols = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1);
        let name = vols[0]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(
            vols[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            pod["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": name, "readOnly": true, "mountPath": MOUNT_PATH}])
        );
        // A container that mounts its own volume there keeps it.
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        // Idempotent.
        let before = pod.clone();
        admit_pod(&mut pod, None);
        assert_eq!(pod, before);
    }

    #[test]
    fn the_accounts_automount_applies_unless_the_pod_sets_its_own() {
        let pod =
            || json!({"spec": {"serviceAccountName": "quiet", "containers": [{"name": "a"}]}});
        let mut p = pod();
        admit_pod(&mut p, Some(false));
        assert!(p["spec"].get("volumes").is_none());
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(true);
        admit_pod(&mut p, Some(false));
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            account_of(&json!({"spec": {"serviceAccount": "old"}})),
            "old"
        );
        assert_eq!(account_of(&json!({"spec": {}})), "default");
    }

    #[test]
    fn automount_false_and_a_named_account() {
        let mut pod = json!({"spec": {"serviceAccountName": "bot", "automountServiceAccountToken": false, "containers": [{"name": "a"}]}});
        admit_pod(&mut pod, None);
        assert_eq!(pod["spec"]["serviceAccountName"], "bot");
        assert_eq!(pod["spec"]["serviceAccount"], "bot");
        assert!(pod["spec"].get("volumes").is_none());
    }
}
