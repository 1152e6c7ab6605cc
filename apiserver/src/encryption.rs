//! Encryption at rest: `--encryption-provider-config` in Kubernetes' EncryptionConfiguration
//! format (`apiserver.config.k8s.io/v1`), with the `aesgcm`, `secretbox` and `identity`
//! providers.
//!
//! For each listed resource the first provider encrypts what is written; every provider can
//! read. An encrypted value is stored as Kubernetes stores it — `k8s:enc:<provider>:v1:<key
//! name>:` then the nonce and the sealed bytes (AES-256-GCM with the store key as associated
//! data; XSalsa20-Poly1305) — so a value read with any but the first key of the first
//! provider is *stale*: an update that changes nothing still rewrites it, which is how keys are
//! rotated (`kubectl get secrets -A -o json | kubectl replace -f -`).

use std::borrow::Cow;

use base64::Engine as _;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::registry::Registry;

const PREFIX: &str = "k8s:enc:";

enum Provider {
    AesGcm(Vec<(String, LessSafeKey)>),
    SecretBox(Vec<(String, crypto_secretbox::XSalsa20Poly1305)>),
    Identity,
}

impl Provider {
    fn name(&self) -> &'static str {
        match self {
            Provider::AesGcm(_) => "aesgcm",
            Provider::SecretBox(_) => "secretbox",
            Provider::Identity => "identity",
        }
    }
}

/// The providers of one group of resources, and the store prefixes they cover.
struct Rule {
    prefixes: Vec<String>,
    providers: Vec<Provider>,
}

/// Encrypts and decrypts stored values by key.
pub struct Transformer {
    rules: Vec<Rule>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                let p: Vec<&str> = r.providers.iter().map(Provider::name).collect();
                format!("{:?} → {}", r.prefixes, p.join(","))
            })
            .collect();
        write!(f, "Transformer({})", rules.join("; "))
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("--encryption-provider-config: {}", msg.into()))
}

fn key_bytes(provider: &str, k: &Value) -> Result<(String, Vec<u8>)> {
    let name = k
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .ok_or_else(|| bad(format!("{provider}: every key needs a name without ':'")))?;
    let secret = k
        .get("secret")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{provider} key {name:?}: no secret")))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .map_err(|e| {
            bad(format!(
                "{provider} key {name:?}: the secret is not base64: {e}"
            ))
        })?;
    Ok((name.to_string(), bytes))
}

fn keys_of<'a>(provider: &str, v: &'a Value) -> Result<&'a Vec<Value>> {
    v.get("keys")
        .and_then(Value::as_array)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| bad(format!("{provider}: at least one key is required")))
}

fn provider(v: &Value) -> Result<Provider> {
    let obj = v.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        bad("each provider is an object with exactly one of aesgcm, secretbox, identity")
    })?;
    let (kind, body) = obj.iter().next().ok_or_else(|| bad("an empty provider"))?;
    match kind.as_str() {
        "identity" => Ok(Provider::Identity),
        "aesgcm" => {
            let mut keys = Vec::new();
            for k in keys_of(kind, body)? {
                let (name, bytes) = key_bytes(kind, k)?;
                if bytes.len() != 32 {
                    // ring's AES-GCM here is AES-256 only.
                    return Err(bad(format!(
                        "aesgcm key {name:?}: {} bytes; keelson supports 32-byte (AES-256) keys",
                        bytes.len()
                    )));
                }
                let key = UnboundKey::new(&AES_256_GCM, &bytes)
                    .map_err(|_| bad(format!("aesgcm key {name:?}: not a valid key")))?;
                keys.push((name, LessSafeKey::new(key)));
            }
            Ok(Provider::AesGcm(keys))
        }
        "secretbox" => {
            let mut keys = Vec::new();
            for k in keys_of(kind, body)? {
                let (name, bytes) = key_bytes(kind, k)?;
                if bytes.len() != 32 {
                    return Err(bad(format!(
                        "secretbox key {name:?}: {} bytes; it must be 32",
                        bytes.len()
                    )));
                }
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&bytes)
                    .map_err(|_| bad(format!("secretbox key {name:?}: not a valid key")))?;
                keys.push((name, cipher));
            }
            Ok(Provider::SecretBox(keys))
        }
        other => Err(bad(format!(
            "provider {other:?} is not supported (aesgcm, secretbox and identity are)"
        ))),
    }
}

/// The store prefixes `resource` (`secrets`, `deployments.apps`, `*.apps`, `*.*`) names.
fn prefixes_of(registry: &Registry, resource: &str) -> Result<Vec<String>> {
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let defs: Vec<_> = registry
        .all()
        .into_iter()
        .filter(|d| (plural == "*" || d.plural == plural) && (group == "*" || d.group == group))
        .collect();
    if defs.is_empty() {
        return Err(bad(format!(
            "resource {resource:?} is not served by keelson"
        )));
    }
    let mut out: Vec<String> = defs.into_iter().map(|d| d.prefix.clone()).collect();
    out.sort();
    out.dedup();
    Ok(out)
}

impl Transformer {
    /// Parses an EncryptionConfiguration (YAML or JSON).
    pub fn parse(text: &str, registry: &Registry) -> Result<Transformer> {
        let v = crate::codec::yaml_to_json(text.as_bytes())
            .map_err(|e| bad(format!("not YAML: {e}")))?;
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if kind != "EncryptionConfiguration" || api_version != "apiserver.config.k8s.io/v1" {
            return Err(bad(format!(
                "want kind EncryptionConfiguration of apiserver.config.k8s.io/v1, got {kind:?} of {api_version:?}"
            )));
        }
        let mut rules = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for r in v
            .get("resources")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no resources"))?
        {
            let mut prefixes = Vec::new();
            for res in r
                .get("resources")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a resources entry without resources"))?
            {
                let res = res
                    .as_str()
                    .ok_or_else(|| bad("a resource is not a string"))?;
                for p in prefixes_of(registry, res)? {
                    // The first rule that names a resource is the one used, as in Kubernetes.
                    if !seen.contains(&p) {
                        seen.push(p.clone());
                        prefixes.push(p);
                    }
                }
            }
            let providers = r
                .get("providers")
                .and_then(Value::as_array)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| bad("a resources entry without providers"))?
                .iter()
                .map(provider)
                .collect::<Result<Vec<_>>>()?;
            rules.push(Rule {
                prefixes,
                providers,
            });
        }
        Ok(Transformer {
            rules,
            rng: SystemRandom::new(),
        })
    }

    /// Reads `--encryption-provider-config`.
    pub fn from_file(path: &std::path::Path, registry: &Registry) -> Result<Transformer> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
        Self::parse(&text, registry)
    }

    fn rule(&self, key: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.prefixes.iter().any(|p| key.starts_with(p.as_str())))
    }

    /// The value to store for `key`.
    pub fn encrypt(&self, key: &str, plain: Vec<u8>) -> Result<Vec<u8>> {
        let Some(first) = self.rule(key).and_then(|r| r.providers.first()) else {
            return Ok(plain);
        };
        let fail = || ApiError::internal("encrypting the object failed");
        match first {
            Provider::Identity => Ok(plain),
            Provider::AesGcm(keys) => {
                let (name, k) = keys.first().ok_or_else(fail)?;
                let mut nonce = [0u8; 12];
                self.rng.fill(&mut nonce).map_err(|_| fail())?;
                let mut sealed = plain;
                k.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(key.as_bytes()),
                    &mut sealed,
                )
                .map_err(|_| fail())?;
                let mut out = format!("{PREFIX}aesgcm:v1:{name}:").into_bytes();
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                Ok(out)
            }
            Provider::SecretBox(keys) => {
                let (name, k) = keys.first().ok_or_else(fail)?;
                let mut nonce = [0u8; 24];
                self.rng.fill(&mut nonce).map_err(|_| fail())?;
                let sealed = k
                    .encrypt(
                        crypto_secretbox::Nonce::from_slice(&nonce),
                        plain.as_slice(),
                    )
                    .map_err(|_| fail())?;
                let mut out = format!("{PREFIX}secretbox:v1:{name}:").into_bytes();
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
                Ok(out)
            }
        }
    }

    /// The plain value of what is stored at `key`, and whether it is stale (not written with
    /// the first key of the first provider, so a rewrite should encrypt it anew).
    pub fn decrypt<'a>(&self, key: &str, stored: &'a [u8]) -> Result<(Cow<'a, [u8]>, bool)> {
        let Some(rule) = self.rule(key) else {
            return Ok((Cow::Borrowed(stored), false));
        };
        let first_is = |provider: &str, name: Option<&str>| {
            rule.providers.first().is_some_and(|p| {
                p.name() == provider
                    && match (p, name) {
                        (Provider::AesGcm(k), Some(n)) => k.first().is_some_and(|(kn, _)| kn == n),
                        (Provider::SecretBox(k), Some(n)) => {
                            k.first().is_some_and(|(kn, _)| kn == n)
                        }
                        (Provider::Identity, None) => true,
                        _ => false,
                    }
            })
        };
        let Some(rest) = stored.strip_prefix(PREFIX.as_bytes()) else {
            // Not encrypted: readable only while identity is one of the providers.
            if rule
                .providers
                .iter()
                .any(|p| matches!(p, Provider::Identity))
            {
                return Ok((Cow::Borrowed(stored), !first_is("identity", None)));
            }
            return Err(ApiError::internal(format!(
                "{key} is stored unencrypted and no identity provider is configured to read it"
            )));
        };
        // <provider>:v1:<name>:<data>
        let mut parts = rest.splitn(4, |b| *b == b':');
        let (Some(provider), Some(b"v1"), Some(name), Some(data)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ApiError::internal(format!(
                "{key}: malformed encrypted value"
            )));
        };
        let provider = String::from_utf8_lossy(provider).into_owned();
        let name = String::from_utf8_lossy(name).into_owned();
        let undecryptable = || {
            ApiError::internal(format!(
                "{key} is encrypted with {provider} key {name:?}, which the encryption configuration does not have (or the data is corrupt)"
            ))
        };
        for p in &rule.providers {
            match p {
                Provider::AesGcm(keys) if provider == "aesgcm" => {
                    let Some((_, k)) = keys.iter().find(|(n, _)| *n == name) else {
                        continue;
                    };
                    if data.len() < 12 {
                        return Err(undecryptable());
                    }
                    let (nonce, sealed) = data.split_at(12);
                    let nonce =
                        Nonce::try_assume_unique_for_key(nonce).map_err(|_| undecryptable())?;
                    let mut buf = sealed.to_vec();
                    let plain = k
                        .open_in_place(nonce, Aad::from(key.as_bytes()), &mut buf)
                        .map_err(|_| undecryptable())?;
                    let n = plain.len();
                    buf.truncate(n);
                    return Ok((Cow::Owned(buf), !first_is("aesgcm", Some(&name))));
                }
                Provider::SecretBox(keys) if provider == "secretbox" => {
                    let Some((_, k)) = keys.iter().find(|(n, _)| *n == name) else {
                        continue;
                    };
                    if data.len() < 24 {
                        return Err(undecryptable());
                    }
                    let (nonce, sealed) = data.split_at(24);
                    let plain = k
                        .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
                        .map_err(|_| undecryptable())?;
                    return Ok((Cow::Owned(plain), !first_is("secretbox", Some(&name))));
                }
                _ => {}
            }
        }
        Err(undecryptable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(providers: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{providers}"
        )
    }

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn t(providers: &str) -> Transformer {
        Transformer::parse(&config(providers), &Registry::builtin()).unwrap()
    }

    const KEY: &str = "/registry/secrets/default/s";

    #[test]
    fn each_provider_round_trips_and_hides_the_plaintext() {
        for p in [
            format!("  - aesgcm: {{keys: [{{name: k1, secret: {K1}}}]}}\n"),
            format!("  - secretbox: {{keys: [{{name: k1, secret: {K1}}}]}}\n"),
        ] {
            let tr = t(&p);
            let sealed = tr.encrypt(KEY, b"{\"data\":\"hunter2\"}".to_vec()).unwrap();
            assert!(sealed.starts_with(b"k8s:enc:"), "{p}");
            assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
            let (plain, stale) = tr.decrypt(KEY, &sealed).unwrap();
            assert_eq!(&*plain, b"{\"data\":\"hunter2\"}");
            assert!(!stale);
            // Other resources are left alone.
            let cm = tr
                .encrypt("/registry/configmaps/default/c", b"{}".to_vec())
                .unwrap();
            assert_eq!(cm, b"{}");
        }
    }

    #[test]
    fn aesgcm_binds_the_value_to_its_key() {
        let tr = t(&format!(
            "  - aesgcm: {{keys: [{{name: k1, secret: {K1}}}]}}\n"
        ));
        let sealed = tr.encrypt(KEY, b"{}".to_vec()).unwrap();
        assert!(tr
            .decrypt("/registry/secrets/default/other", &sealed)
            .is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(tr.decrypt(KEY, &flipped).is_err());
    }

    #[test]
    fn rotation_reads_old_keys_and_marks_them_stale() {
        let old = t(&format!(
            "  - aesgcm: {{keys: [{{name: k1, secret: {K1}}}]}}\n  - identity: {{}}\n"
        ));
        let plain_stored = b"{\"plain\":true}".to_vec();
        let by_k1 = old.encrypt(KEY, b"{\"k\":1}".to_vec()).unwrap();
        // Identity first: plaintext is current, k1's data is stale.
        let rotated = t(&format!(
            "  - secretbox: {{keys: [{{name: k2, secret: {K2}}}]}}\n  - aesgcm: {{keys: [{{name: k1, secret: {K1}}}]}}\n  - identity: {{}}\n"
        ));
        let (p, stale) = rotated.decrypt(KEY, &by_k1).unwrap();
        assert_eq!((&*p, stale), (&b"{\"k\":1}"[..], true));
        let (p, stale) = rotated.decrypt(KEY, &plain_stored).unwrap();
        assert_eq!((&*p, stale), (&plain_stored[..], true));
        let fresh = rotated.encrypt(KEY, b"{}".to_vec()).unwrap();
        assert!(fresh.starts_with(b"k8s:enc:secretbox:v1:k2:"));
        assert!(!rotated.decrypt(KEY, &fresh).unwrap().1);
        // Without identity, plaintext is refused rather than misread; without the key, too.
        let no_identity = t(&format!(
            "  - aesgcm: {{keys: [{{name: k1, secret: {K1}}}]}}\n"
        ));
        assert!(no_identity.decrypt(KEY, &plain_stored).is_err());
        let other_key = t(&format!(
            "  - aesgcm: {{keys: [{{name: k9, secret: {K2}}}]}}\n"
        ));
        let e = other_key.decrypt(KEY, &by_k1).unwrap_err().to_string();
        assert!(e.contains("\"k1\""), "{e}");
    }

    #[test]
    fn bad_configurations_are_refused_clearly() {
        let reg = Registry::builtin();
        for (text, want) in [
            ("kind: Other".to_string(), "EncryptionConfiguration"),
            (config("  - aesgcm: {keys: [{name: k1, secret: c2hvcnQ=}]}\n"), "32-byte"),
            (config("  - aescbc: {keys: [{name: k1, secret: c2hvcnQ=}]}\n"), "not supported"),
            (config("  - aesgcm: {keys: []}\n"), "at least one key"),
            (config("  - secretbox: {keys: [{name: k1, secret: '!!'}]}\n"), "base64"),
            (
                "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [nonsense]\n  providers: [{identity: {}}]\n".to_string(),
                "not served",
            ),
        ] {
            let e = Transformer::parse(&text, &reg).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
