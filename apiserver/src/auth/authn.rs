//! Authentication of a request: a client certificate signed by the cluster CA (CN the user,
//! O the groups), else a bearer token from `--token-auth-file`, else anonymous if allowed.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED};
use crate::error::{ApiError, Result};
use crate::rest::User;

/// How requests authenticate beyond client certificates.
#[derive(Clone, Debug, Default)]
pub struct AuthnConfig {
    /// Static bearer tokens (`--token-auth-file`), by the SHA-256 of the token: the tokens
    /// themselves are not kept in memory, and a lookup does not compare secrets byte by byte.
    tokens: HashMap<[u8; 32], User>,
    /// `--anonymous-auth`: requests without credentials run as `system:anonymous` (and are
    /// then authorized like any other) instead of getting `401`.
    pub anonymous: bool,
    /// Signs and verifies ServiceAccount tokens (`pki/service-account.key`); without it the
    /// TokenRequest API answers 500 and such tokens are not accepted.
    pub signer: Option<std::sync::Arc<super::token::Signer>>,
}

impl AuthnConfig {
    /// No bearer tokens; anonymous requests allowed or not.
    pub fn new(anonymous: bool) -> AuthnConfig {
        AuthnConfig {
            tokens: HashMap::new(),
            anonymous,
            signer: None,
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Splits one CSV line, with `"…"` quoting (`""` inside quotes is a quote).
fn csv_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if cur.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            '"' => return Err("a bare quote in an unquoted field".into()),
            ',' if !quoted => {
                fields.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("an unterminated quoted field".into());
    }
    fields.push(cur);
    Ok(fields)
}

impl AuthnConfig {
    /// Parses a token file in Kubernetes' format: one `token,user,uid[,"group1,group2"]`
    /// per line; blank lines and lines starting with `#` are skipped.
    pub fn parse_token_file(text: &str) -> Result<HashMap<[u8; 32], User>> {
        let mut tokens = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |why: &str| ApiError::bad_request(format!("token file line {}: {why}", n + 1));
            let f = csv_fields(line).map_err(|e| bad(&e))?;
            if f.len() < 3 {
                return Err(bad("want at least 3 columns: token,user,uid"));
            }
            if f[0].is_empty() || f[1].is_empty() {
                return Err(bad("the token and the user name must not be empty"));
            }
            let mut groups: Vec<String> = f
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if !groups.iter().any(|g| g == AUTHENTICATED) {
                groups.push(AUTHENTICATED.into());
            }
            let user = User {
                name: f[1].clone(),
                uid: f[2].clone(),
                groups,
            };
            if tokens.insert(digest(&f[0]), user).is_some() {
                return Err(bad("the token is listed twice"));
            }
        }
        Ok(tokens)
    }

    /// Reads `--token-auth-file`.
    pub fn with_token_file(mut self, path: &Path) -> Result<AuthnConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ApiError::internal(format!("reading the token file {}: {e}", path.display()))
        })?;
        self.tokens = Self::parse_token_file(&text)?;
        Ok(self)
    }

    /// The user of a request: the certificate's, else the bearer token's — a static one, or
    /// what `other` makes of it (ServiceAccount tokens); a token neither knows is `401`,
    /// never anonymous — else anonymous if allowed.
    pub fn authenticate(
        &self,
        cert_user: Option<User>,
        authorization: Option<&str>,
        other: impl FnOnce(&str) -> Option<User>,
    ) -> Result<User> {
        if let Some(mut u) = cert_user {
            if !u.groups.iter().any(|g| g == AUTHENTICATED) {
                u.groups.push(AUTHENTICATED.into());
            }
            return Ok(u);
        }
        if let Some(h) = authorization {
            let token = h
                .strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or(ApiError::Unauthorized)?;
            if let Some(u) = self.tokens.get(&digest(token)) {
                return Ok(u.clone());
            }
            return other(token).ok_or(ApiError::Unauthorized);
        }
        if self.anonymous {
            return Ok(User {
                name: ANONYMOUS.into(),
                uid: String::new(),
                groups: vec![UNAUTHENTICATED.into()],
            });
        }
        Err(ApiError::Unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_like_kubernetes() {
        let t = AuthnConfig::parse_token_file(
            "# comment\n\nsecret1,alice,uid-1,\"dev,ops\"\nsecret2,bob,uid-2\n",
        )
        .unwrap();
        let cfg = AuthnConfig {
            tokens: t,
            anonymous: false,
            signer: None,
        };
        let alice = cfg
            .authenticate(None, Some("Bearer secret1"), |_| None)
            .unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "uid-1");
        assert_eq!(alice.groups, vec!["dev", "ops", AUTHENTICATED]);
        let bob = cfg
            .authenticate(None, Some("Bearer secret2"), |_| None)
            .unwrap();
        assert_eq!(bob.groups, vec![AUTHENTICATED]);
        for bad in ["Bearer nope", "Bearer ", "Basic abc", "secret1"] {
            assert!(
                matches!(
                    cfg.authenticate(None, Some(bad), |_| None),
                    Err(ApiError::Unauthorized)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            cfg.authenticate(None, None, |_| None),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn bad_token_files_name_the_line() {
        for (text, line) in [
            ("a,b\n", 1),
            ("ok,u,1\n,user,2\n", 2),
            ("t,u,1\nt,v,2\n", 2),
            ("t,u,1,\"open\n", 1),
        ] {
            let e = AuthnConfig::parse_token_file(text).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}")), "{text:?}: {e}");
        }
    }

    #[test]
    fn other_tokens_are_asked_after_the_static_ones() {
        let cfg = AuthnConfig::new(false);
        let sa = User {
            name: "system:serviceaccount:a:b".into(),
            uid: String::new(),
            groups: Vec::new(),
        };
        let got = cfg.authenticate(None, Some("Bearer jwt"), |t| {
            (t == "jwt").then(|| sa.clone())
        });
        assert_eq!(got.unwrap().name, sa.name);
        assert!(cfg
            .authenticate(None, Some("Bearer other"), |t| (t == "jwt")
                .then(|| sa.clone()))
            .is_err());
    }

    #[test]
    fn anonymous_only_when_enabled_and_certificates_win() {
        let cfg = AuthnConfig {
            tokens: HashMap::new(),
            anonymous: true,
            signer: None,
        };
        let anon = cfg.authenticate(None, None, |_| None).unwrap();
        assert_eq!(
            (anon.name.as_str(), anon.groups.as_slice()),
            (ANONYMOUS, &[UNAUTHENTICATED.to_string()][..])
        );
        let cert = User {
            name: "carol".into(),
            uid: String::new(),
            groups: vec!["team".into()],
        };
        let u = cfg
            .authenticate(Some(cert), Some("Bearer whatever"), |_| None)
            .unwrap();
        assert_eq!(u.name, "carol");
        assert_eq!(u.groups, vec!["team", AUTHENTICATED]);
    }
}
