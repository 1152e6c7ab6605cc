//! ServiceAccount tokens: JWTs signed with the cluster's service-account key (ES256, P-256),
//! in Kubernetes' bound-token format — issuer, audiences, expiry, and the `kubernetes.io`
//! claim naming the namespace, the ServiceAccount and the Pod the token is bound to.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Result};

/// The issuer (and the default audience) of keelson's tokens, as Kubernetes' default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Signs and verifies ServiceAccount tokens.
pub struct Signer {
    key: EcdsaKeyPair,
    public: Vec<u8>,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(kid {})", self.kid)
    }
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    /// (name, uid) of the Pod the token is bound to.
    pub pod: Option<(String, String)>,
    pub audiences: Vec<String>,
    pub expires: i64,
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

impl Signer {
    /// From the PKCS#8 PEM of a P-256 key (`pki/service-account.key`).
    pub fn from_pem(pem: &str) -> Result<Signer> {
        let der = crate::pki::pem_der(pem)
            .ok_or_else(|| ApiError::internal("the service-account key is not PEM"))?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| ApiError::internal(format!("the service-account key: {e}")))?;
        let public = key.public_key().as_ref().to_vec();
        let kid = b64(&Sha256::digest(&public));
        Ok(Signer {
            key,
            public,
            kid,
            rng,
        })
    }

    /// A signed token for `claims`, issued at `now` (Unix seconds).
    pub fn issue(&self, c: &Claims, now: i64) -> Result<String> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let mut k8s = json!({
            "namespace": c.namespace,
            "serviceaccount": {"name": c.service_account, "uid": c.service_account_uid},
        });
        if let Some((name, uid)) = &c.pod {
            k8s["pod"] = json!({"name": name, "uid": uid});
        }
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&self.rng, &mut jti)
            .map_err(|_| ApiError::internal("no randomness for a token id"))?;
        let claims = json!({
            "aud": c.audiences,
            "exp": c.expires,
            "iat": now,
            "nbf": now,
            "iss": ISSUER,
            "jti": b64(&jti),
            "kubernetes.io": k8s,
            "sub": format!("system:serviceaccount:{}:{}", c.namespace, c.service_account),
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| ApiError::internal("signing a token failed"))?;
        Ok(format!("{signing_input}.{}", b64(sig.as_ref())))
    }

    /// The claims of a token this key signed that is valid at `now` for one of `audiences`;
    /// `None` for anything else (another key, a bad signature, expired, another audience,
    /// not a JWT at all).
    pub fn verify(&self, token: &str, audiences: &[&str], now: i64) -> Option<Claims> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.public)
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .ok()?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()?;
        if claims.get("iss")?.as_str()? != ISSUER {
            return None;
        }
        let exp = claims.get("exp")?.as_i64()?;
        let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
        // A minute of leeway for clocks that differ between servers, as Kubernetes allows.
        if now >= exp + 60 || now + 60 < nbf {
            return None;
        }
        let aud: Vec<String> = match claims.get("aud")? {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => return None,
        };
        if !aud.iter().any(|a| audiences.contains(&a.as_str())) {
            return None;
        }
        let k8s = claims.get("kubernetes.io")?;
        let sa = k8s.get("serviceaccount")?;
        let pod = k8s.get("pod").and_then(|p| {
            Some((
                p.get("name")?.as_str()?.to_string(),
                p.get("uid")?.as_str()?.to_string(),
            ))
        });
        Some(Claims {
            namespace: k8s.get("namespace")?.as_str()?.to_string(),
            service_account: sa.get("name")?.as_str()?.to_string(),
            service_account_uid: sa.get("uid")?.as_str()?.to_string(),
            pod,
            audiences: aud,
            expires: exp,
        })
    }
}

/// A new service-account key (PKCS#8 PEM).
pub fn new_key_pem() -> Result<String> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map(|k| k.serialize_pem())
        .map_err(|e| ApiError::internal(format!("generating the service-account key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            namespace: "team".into(),
            service_account: "bot".into(),
            service_account_uid: "sa-uid".into(),
            pod: Some(("web-1".into(), "pod-uid".into())),
            audiences: vec![ISSUER.into()],
            expires: 1_000_000 + 3600,
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_their_claims() {
        let s = Signer::from_pem(&new_key_pem().unwrap()).unwrap();
        let t = s.issue(&claims(), 1_000_000).unwrap();
        assert_eq!(s.verify(&t, &[ISSUER], 1_000_010), Some(claims()));
        // Expired (past the minute of leeway), another audience, another key, tampering.
        assert_eq!(s.verify(&t, &[ISSUER], 1_000_000 + 3600 + 61), None);
        assert_eq!(s.verify(&t, &["vault"], 1_000_010), None);
        let other = Signer::from_pem(&new_key_pem().unwrap()).unwrap();
        assert_eq!(other.verify(&t, &[ISSUER], 1_000_010), None);
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
        parts[1] = b64(payload.to_string().as_bytes());
        assert_eq!(s.verify(&parts.join("."), &[ISSUER], 1_000_010), None);
        for junk in ["", "a.b", "a.b.c", "a.b.c.d", "x.y.z"] {
            assert_eq!(s.verify(junk, &[ISSUER], 1_000_010), None);
        }
    }

    #[test]
    fn the_alg_none_trick_is_refused() {
        let s = Signer::from_pem(&new_key_pem().unwrap()).unwrap();
        let t = s.issue(&claims(), 1_000_000).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let none = b64(br#"{"alg":"none"}"#);
        assert_eq!(
            s.verify(&format!("{none}.{}.", parts[1]), &[ISSUER], 1_000_010),
            None
        );
    }
}
