//! etcd's authentication and authorization: users, roles, key-range permissions and tokens.
//!
//! The state ([`AuthState`]) is replicated: every change is a raft entry
//! ([`AuthRequest`]), applied by every member, stored in the state machine's metadata and so
//! carried by snapshots. Passwords are hashed (PBKDF2-HMAC-SHA256) by the member that receives
//! the request, before it is proposed, so no password enters the log. Tokens are stateless:
//! a MAC under a secret that `AuthEnable` puts into the replicated state, naming the user and
//! an expiry, so any member checks any member's token; the user's permissions are looked up
//! at each request, so a revoked permission or a deleted user takes effect at once.

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::error::EtcdError;

/// The role whose holders may do anything, and the user that must hold it to enable auth.
pub const ROOT: &str = "root";
/// PBKDF2 rounds: ~0.1 s of one core per `Authenticate`, as etcd's bcrypt cost 10.
const PBKDF2_ROUNDS: u32 = 100_000;

/// etcd's `authpb.Permission.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PermKind {
    Read,
    Write,
    ReadWrite,
}

impl PermKind {
    pub fn from_wire(t: i32) -> Option<PermKind> {
        match t {
            0 => Some(PermKind::Read),
            1 => Some(PermKind::Write),
            2 => Some(PermKind::ReadWrite),
            _ => None,
        }
    }

    pub fn to_wire(self) -> i32 {
        match self {
            PermKind::Read => 0,
            PermKind::Write => 1,
            PermKind::ReadWrite => 2,
        }
    }

    fn allows(self, need: Access) -> bool {
        matches!(
            (self, need),
            (PermKind::ReadWrite, _)
                | (PermKind::Read, Access::Read)
                | (PermKind::Write, Access::Write)
        )
    }
}

/// What a request needs on a key range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perm {
    pub kind: PermKind,
    pub key: Vec<u8>,
    /// etcd's range end: empty for the single key, `"\0"` for every key from `key` on.
    pub range_end: Vec<u8>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `None`: the user has no password (etcd's `--no-password`) and authenticates only with
    /// a client certificate naming it.
    pub password: Option<String>,
    pub roles: BTreeSet<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub perms: Vec<Perm>,
}

/// The replicated auth state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthState {
    pub enabled: bool,
    /// etcd's auth revision: bumped by every change.
    pub revision: u64,
    /// The token MAC key, set by the `AuthEnable` that turned auth on.
    pub secret: Vec<u8>,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

/// A change to the auth state, as proposed through raft.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthRequest {
    Enable {
        secret: Vec<u8>,
    },
    Disable,
    UserAdd {
        name: String,
        password: Option<String>,
    },
    UserDelete {
        name: String,
    },
    UserChangePassword {
        name: String,
        password: Option<String>,
    },
    UserGrantRole {
        user: String,
        role: String,
    },
    UserRevokeRole {
        name: String,
        role: String,
    },
    RoleAdd {
        name: String,
    },
    RoleDelete {
        name: String,
    },
    RoleGrantPermission {
        name: String,
        perm: Perm,
    },
    RoleRevokePermission {
        name: String,
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
}

impl AuthState {
    /// Applies one change; on success the auth revision moves on.
    pub fn apply(&mut self, r: &AuthRequest) -> Result<(), EtcdError> {
        use AuthRequest as A;
        match r {
            A::Enable { secret } => {
                if self.enabled {
                    return Ok(());
                }
                let root = self.users.get(ROOT).ok_or(EtcdError::RootUserNotExist)?;
                if !root.roles.contains(ROOT) {
                    return Err(EtcdError::RootRoleNotExist);
                }
                self.enabled = true;
                self.secret = secret.clone();
            }
            A::Disable => {
                if !self.enabled {
                    return Ok(());
                }
                self.enabled = false;
            }
            A::UserAdd { name, password } => {
                if name.is_empty() {
                    return Err(EtcdError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(EtcdError::UserAlreadyExist);
                }
                self.users.insert(
                    name.clone(),
                    User {
                        password: password.clone(),
                        roles: BTreeSet::new(),
                    },
                );
            }
            A::UserDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(EtcdError::UserNotFound)?;
            }
            A::UserChangePassword { name, password } => {
                let u = self.users.get_mut(name).ok_or(EtcdError::UserNotFound)?;
                u.password = password.clone();
            }
            A::UserGrantRole { user, role } => {
                if role != ROOT && !self.roles.contains_key(role) {
                    return Err(EtcdError::RoleNotFound);
                }
                let u = self.users.get_mut(user).ok_or(EtcdError::UserNotFound)?;
                u.roles.insert(role.clone());
            }
            A::UserRevokeRole { name, role } => {
                if self.enabled && name == ROOT && role == ROOT {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(name).ok_or(EtcdError::UserNotFound)?;
                if !u.roles.remove(role) {
                    return Err(EtcdError::RoleNotGranted);
                }
            }
            A::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(EtcdError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(EtcdError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Role::default());
            }
            A::RoleDelete { name } => {
                if self.enabled && name == ROOT {
                    return Err(EtcdError::InvalidAuthMgmt);
                }
                self.roles.remove(name).ok_or(EtcdError::RoleNotFound)?;
                for u in self.users.values_mut() {
                    u.roles.remove(name);
                }
            }
            A::RoleGrantPermission { name, perm } => {
                let role = self.roles.get_mut(name).ok_or(EtcdError::RoleNotFound)?;
                // etcd replaces a permission on the same range.
                match role
                    .perms
                    .iter_mut()
                    .find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    Some(p) => p.kind = perm.kind,
                    None => role.perms.push(perm.clone()),
                }
                role.perms
                    .sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
            }
            A::RoleRevokePermission {
                name,
                key,
                range_end,
            } => {
                let role = self.roles.get_mut(name).ok_or(EtcdError::RoleNotFound)?;
                let before = role.perms.len();
                role.perms
                    .retain(|p| !(p.key == *key && p.range_end == *range_end));
                if role.perms.len() == before {
                    return Err(EtcdError::PermissionNotGranted);
                }
            }
        }
        self.revision += 1;
        Ok(())
    }

    /// Whether `user` holds the root role.
    pub fn is_admin(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.contains(ROOT))
    }

    /// Whether `user` may `need` every key of `[key, range_end)` (etcd's range end rules).
    pub fn permitted(&self, user: &str, need: Access, key: &[u8], range_end: &[u8]) -> bool {
        let Some(u) = self.users.get(user) else {
            return false;
        };
        if u.roles.contains(ROOT) {
            return true;
        }
        let mut spans: Vec<(Vec<u8>, Option<Vec<u8>>)> = u
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.perms.iter())
            .filter(|p| p.kind.allows(need))
            .map(|p| span(&p.key, &p.range_end))
            .collect();
        spans.sort();
        let (want_start, want_end) = span(key, range_end);
        // Merge the permitted spans and look for one that holds the wanted span whole.
        let mut cur: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
        for (s, e) in spans {
            cur = match cur {
                Some((cs, ce)) if ce.as_ref().is_none_or(|ce| s <= *ce) => {
                    let end = match (ce, e) {
                        (None, _) | (_, None) => None,
                        (Some(a), Some(b)) => Some(a.max(b)),
                    };
                    Some((cs, end))
                }
                Some(done) => {
                    if covers(&done, &want_start, &want_end) {
                        return true;
                    }
                    Some((s, e))
                }
                None => Some((s, e)),
            };
        }
        cur.is_some_and(|c| covers(&c, &want_start, &want_end))
    }

    /// Checks a user's password; users without one cannot authenticate with a password.
    pub fn check_password(&self, name: &str, password: &str) -> bool {
        self.users
            .get(name)
            .and_then(|u| u.password.as_deref())
            .is_some_and(|h| verify_password(h, password))
    }

    /// A token for `user`, valid until `expires` (unix seconds).
    pub fn issue_token(&self, user: &str, expires: u64) -> String {
        let payload = format!("{expires}:{user}");
        let mac = mac(&self.secret, payload.as_bytes());
        format!("{}.{}", hex(payload.as_bytes()), hex(&mac))
    }

    /// The user a token names, if it is one of ours, unexpired, and its user exists.
    pub fn verify_token(&self, token: &str, now: u64) -> Option<String> {
        let (payload, sig) = token.split_once('.')?;
        let payload = unhex(payload)?;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.secret);
        ring::hmac::verify(&key, &payload, &unhex(sig)?).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let (expires, user) = payload.split_once(':')?;
        if expires.parse::<u64>().ok()? <= now || !self.users.contains_key(user) {
            return None;
        }
        Some(user.to_string())
    }
}

/// `[key, range_end)` as a span: `None` is no upper bound.
fn span(key: &[u8], range_end: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    match range_end {
        [] => {
            let mut end = key.to_vec();
            end.push(0);
            (key.to_vec(), Some(end))
        }
        [0] => (key.to_vec(), None),
        e => (key.to_vec(), Some(e.to_vec())),
    }
}

fn covers(have: &(Vec<u8>, Option<Vec<u8>>), start: &[u8], end: &Option<Vec<u8>>) -> bool {
    if have.0.as_slice() > start {
        return false;
    }
    match (&have.1, end) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(h), Some(w)) => w <= h,
    }
}

fn mac(secret: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A password as stored: `pbkdf2-sha256$<rounds>$<salt hex>$<hash hex>`.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let rounds = NonZeroU32::new(PBKDF2_ROUNDS).unwrap_or(NonZeroU32::MIN);
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    format!("pbkdf2-sha256${PBKDF2_ROUNDS}${}${}", hex(&salt), hex(&out))
}

fn verify_password(stored: &str, password: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(rounds), Some(salt), Some(hash)) = (
        rounds.parse::<u32>().ok().and_then(NonZeroU32::new),
        unhex(salt),
        unhex(hash),
    ) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(kind: PermKind, key: &str, end: &str) -> Perm {
        Perm {
            kind,
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
        }
    }

    fn state() -> AuthState {
        let mut s = AuthState::default();
        for r in [
            AuthRequest::UserAdd {
                name: ROOT.into(),
                password: Some(hash_password("rootpw")),
            },
            AuthRequest::UserAdd {
                name: "alice".into(),
                password: Some(hash_password("alicepw")),
            },
            AuthRequest::RoleAdd { name: "app".into() },
            AuthRequest::RoleAdd { name: "ro".into() },
            AuthRequest::RoleGrantPermission {
                name: "app".into(),
                perm: perm(PermKind::ReadWrite, "/app/", "/app0"),
            },
            AuthRequest::RoleGrantPermission {
                name: "ro".into(),
                perm: perm(PermKind::Read, "/cfg", ""),
            },
            AuthRequest::RoleGrantPermission {
                name: "ro".into(),
                perm: perm(PermKind::Read, "/logs/a", "/logs/m"),
            },
            AuthRequest::RoleGrantPermission {
                name: "ro".into(),
                perm: perm(PermKind::Read, "/logs/k", "/logs/z"),
            },
            AuthRequest::UserGrantRole {
                user: "alice".into(),
                role: "app".into(),
            },
            AuthRequest::UserGrantRole {
                user: "alice".into(),
                role: "ro".into(),
            },
        ] {
            s.apply(&r).expect("apply");
        }
        s
    }

    #[test]
    fn enabling_needs_a_root_user_with_the_root_role() {
        let mut s = state();
        let enable = AuthRequest::Enable {
            secret: b"k".to_vec(),
        };
        assert_eq!(s.apply(&enable), Err(EtcdError::RootRoleNotExist));
        s.apply(&AuthRequest::UserGrantRole {
            user: ROOT.into(),
            role: ROOT.into(),
        })
        .expect("grant root");
        let rev = s.revision;
        s.apply(&enable).expect("enable");
        assert!(s.enabled && s.revision == rev + 1);
        assert_eq!(
            s.apply(&AuthRequest::UserDelete { name: ROOT.into() }),
            Err(EtcdError::InvalidAuthMgmt)
        );
        let mut empty = AuthState::default();
        assert_eq!(empty.apply(&enable), Err(EtcdError::RootUserNotExist));
    }

    #[test]
    fn ranges_are_permitted_only_when_covered_whole() {
        let s = state();
        let ok = |need, k: &str, e: &str| s.permitted("alice", need, k.as_bytes(), e.as_bytes());
        assert!(ok(Access::Write, "/app/x", ""));
        assert!(ok(Access::Read, "/app/", "/app0"), "the whole prefix");
        assert!(
            !ok(Access::Read, "/app/", "\0"),
            "open-ended reaches past /app0"
        );
        assert!(ok(Access::Read, "/cfg", ""));
        assert!(!ok(Access::Write, "/cfg", ""), "read-only");
        assert!(!ok(Access::Read, "/cfg2", ""));
        assert!(
            ok(Access::Read, "/logs/b", "/logs/y"),
            "two overlapping grants merge"
        );
        assert!(!ok(Access::Read, "/logs/b", "/logs/zz"));
        assert!(!ok(Access::Read, "/other", ""));
        assert!(!s.permitted("nobody", Access::Read, b"/app/x", b""));
        assert!(s.permitted(ROOT, Access::Read, b"", b"\0") || !s.is_admin(ROOT));
    }

    #[test]
    fn passwords_and_tokens() {
        let mut s = state();
        assert!(s.check_password("alice", "alicepw"));
        assert!(!s.check_password("alice", "wrong"));
        assert!(!s.check_password("bob", "alicepw"));
        s.secret = b"secret".to_vec();
        let t = s.issue_token("alice", 1000);
        assert_eq!(s.verify_token(&t, 999).as_deref(), Some("alice"));
        assert_eq!(s.verify_token(&t, 1000), None, "expired");
        let forged = t.replacen('.', ".00", 1);
        assert_eq!(s.verify_token(&forged, 1), None);
        let mut other = s.clone();
        other.secret = b"another".to_vec();
        assert_eq!(other.verify_token(&t, 1), None, "another cluster's secret");
        s.apply(&AuthRequest::UserDelete {
            name: "alice".into(),
        })
        .expect("delete");
        assert_eq!(s.verify_token(&t, 1), None, "the user is gone");
    }
}
